# Stage 1: the expression data, read and validated into one .h5ad.


rule simulate:
    """Simulated counts with known truth (data.source: simulate), and the batch-free twin."""
    output:
        h5ad=res("data/simulated.h5ad"),
        batch_free=res("data/batch_free.h5ad"),
    log:
        logf("simulate"),
    benchmark:
        bench("simulate")
    params:
        sim=config["data"]["simulate"],
        seed=rule_seed("simulate"),
    threads: 2
    resources:
        mem_mb=simulate_mem_mb,
        runtime=10,
    conda:
        ENV
    script:
        "../scripts/simulate.py"


rule ingest:
    """Read the configured source, attach the sample sheet, validate, write one .h5ad."""
    input:
        **ingest_input(),
    output:
        h5ad=res("ingest/raw.h5ad"),
    log:
        logf("ingest"),
    benchmark:
        bench("ingest")
    params:
        data=config["data"],
    threads: 1
    resources:
        mem_mb=mem_for(1000, 8),
        runtime=runtime_for(10, 10),
    conda:
        ENV
    script:
        "../scripts/ingest.py"
