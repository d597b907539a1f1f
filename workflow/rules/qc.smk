# Stage 2: quality control, normalisation and highly variable genes.


rule qc:
    """Filter samples and genes, normalise (counts) and flag highly variable genes."""
    input:
        h5ad=res("ingest/raw.h5ad"),
    output:
        h5ad=res("qc/qc.h5ad"),
        summary=report(
            res("qc/qc_summary.tsv"),
            caption="../report/qc_summary.rst",
            category="1. Ingest and QC",
        ),
        figure=report(
            res("qc/qc_metrics.png"),
            caption="../report/qc_metrics.rst",
            category="1. Ingest and QC",
        ),
    log:
        logf("qc"),
    benchmark:
        bench("qc")
    params:
        qc=config["qc"],
        data_type=config["data"]["data_type"],
        batch_key=config["data"]["batch_key"],
    threads: 2
    resources:
        mem_mb=mem_for(1000, 14),
        runtime=runtime_for(10, 15),
    conda:
        ENV
    script:
        "../scripts/qc.py"
