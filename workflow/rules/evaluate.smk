# Stage 5: evaluation. Integration metrics on PCA of the uncorrected and corrected data and
# on the autoencoder latent (and, for simulated data, on the batch-free twin), figures, the
# ground-truth scores, and the confounding sweep (on simulated data, whatever the input).

rule batch_free:
    """The simulator's batch-free twin, with the data's samples and genes and its normalisation."""
    input:
        twin=res("data/batch_free.h5ad"),
        qc=res("qc/qc.h5ad"),
    output:
        h5ad=res("evaluate/batch_free.h5ad"),
    log:
        logf("batch_free"),
    benchmark:
        bench("batch_free")
    threads: 1
    resources:
        mem_mb=mem_for(1000, 6),
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/batch_free.py"


rule evaluate:
    """Integration metrics (batch removal, biology conservation) per representation; figures."""
    input:
        unpack(evaluate_input),
    output:
        metrics=report(
            res("evaluate/metrics.tsv"),
            caption="../report/evaluate_metrics_table.rst",
            category="5. Evaluation",
        ),
        bars=report(
            res("evaluate/metrics.png"),
            caption="../report/evaluate_metrics.rst",
            category="5. Evaluation",
        ),
        pca=report(
            res("evaluate/pca.png"),
            caption="../report/evaluate_pca.rst",
            category="5. Evaluation",
        ),
        umap=report(
            res("evaluate/umap.png"),
            caption="../report/evaluate_umap.rst",
            category="5. Evaluation",
        ),
    log:
        logf("evaluate"),
    benchmark:
        bench("evaluate")
    params:
        data=config["data"],
        evaluation=config["evaluation"],
        embedding_key=config["embedding"]["key_added"],
        seed=rule_seed("evaluate"),
    threads: 2
    resources:
        mem_mb=mem_for(2000, 6),
        runtime=30,
    conda:
        ENV
    script:
        "../scripts/evaluate.py"


rule evaluate_truth:
    """Simulated data: the true condition effects left after correction (vs the batch-free twin)."""
    input:
        simulated=res("data/simulated.h5ad"),
        qc=res("qc/qc.h5ad"),
        corrected=res("correct/corrected.h5ad"),
        batch_free=res("evaluate/batch_free.h5ad"),
    output:
        table=report(
            res("evaluate/truth.tsv"),
            caption="../report/evaluate_truth.rst",
            category="5. Evaluation",
        ),
    log:
        logf("evaluate_truth"),
    benchmark:
        bench("evaluate_truth")
    params:
        data=config["data"],
        fdr=config["evaluation"]["fdr"],
    threads: 1
    resources:
        mem_mb=mem_for(1000, 6),
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/evaluate_truth.py"


rule confounding_sweep:
    """One confounding level: simulate, check, correct with and without the covariate, score."""
    output:
        table=res("sweep/level_{level}.tsv"),
    wildcard_constraints:
        level=r"[0-9]+(\.[0-9]+)?",
    log:
        logf("confounding_sweep_{level}"),
    benchmark:
        bench("confounding_sweep_{level}")
    params:
        evaluation=config["evaluation"],
        # one seed for every level: the same genes, effects and conditions; only batches move
        seed=rule_seed("confounding_sweep"),
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/confounding_sweep.py"


rule confounding_sweep_summary:
    """The sweep's levels in one table and one figure (refusals recorded as data)."""
    input:
        expand(res("sweep/level_{level}.tsv"), level=[sweep_level_name(x) for x in config["evaluation"]["sweep_levels"]]),
    output:
        table=report(
            res("sweep/summary.tsv"),
            caption="../report/sweep_table.rst",
            category="2. Confounding",
        ),
        figure=report(
            res("sweep/sweep.png"),
            caption="../report/sweep_figure.rst",
            category="2. Confounding",
        ),
    log:
        logf("confounding_sweep_summary"),
    benchmark:
        bench("confounding_sweep_summary")
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,
    conda:
        ENV
    script:
        "../scripts/confounding_sweep_summary.py"
