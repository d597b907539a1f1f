# Stage 3: confounding checks, batch correction, per-gene batch tests.


rule confounding:
    """Quantify batch-covariate association; an aliased design is reported as refused."""
    input:
        h5ad=res("qc/qc.h5ad"),
    output:
        json=res("confounding/report.json"),
        table=report(
            res("confounding/table.tsv"),
            caption="../report/confounding_table.rst",
            category="2. Confounding",
        ),
        heatmap=report(
            res("confounding/heatmap.png"),
            caption="../report/confounding_heatmap.rst",
            category="2. Confounding",
        ),
    log:
        logf("confounding"),
    params:
        data=config["data"],
        thresholds=config["confounding"],
    threads: 1
    resources:
        mem_mb=mem_for(500, 3),
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/confounding.py"


rule correct:
    """Remove batch effects (none | linear | combat); fails on an aliased design."""
    input:
        h5ad=res("qc/qc.h5ad"),
        confounding=res("confounding/report.json"),
    output:
        h5ad=res("correct/corrected.h5ad"),
    log:
        logf("correct"),
    benchmark:
        bench("correct")
    params:
        data=config["data"],
        correction=config["correction"],
    threads: 2
    resources:
        mem_mb=mem_for(1000, 6),
        runtime=runtime_for(10, 5),
    conda:
        ENV
    script:
        "../scripts/correct.py"


rule batch_tests:
    """Per-gene F-test of batch given the covariates, before and after correction."""
    input:
        before=res("qc/qc.h5ad"),
        after=res("correct/corrected.h5ad"),
    output:
        genes=res("batch_tests/genes.tsv"),
        summary=report(
            res("batch_tests/summary.tsv"),
            caption="../report/batch_tests_summary.rst",
            category="3. Correction",
        ),
        figure=report(
            res("batch_tests/pvalues.png"),
            caption="../report/batch_tests_pvalues.rst",
            category="3. Correction",
        ),
    log:
        logf("batch_tests"),
    benchmark:
        bench("batch_tests")
    params:
        data=config["data"],
        fdr=config["correction"]["fdr"],
    threads: 2
    resources:
        mem_mb=mem_for(1000, 3),  # two inputs, read one after the other
        runtime=runtime_for(10, 5),
    conda:
        ENV
    script:
        "../scripts/batch_tests.py"
