# Stage 4: the batch-normalised autoencoder embedding of the corrected data.


rule embed:
    """Train the autoencoder through bioml.train; latent to obsm, anomaly scores to obs."""
    input:
        h5ad=res("correct/corrected.h5ad"),
    output:
        h5ad=res("embed/embedded.h5ad"),
        history=res("embed/history.tsv"),
        model=res("embed/model.pt"),
        loss_png=report(
            res("embed/loss.png"),
            caption="../report/embed_loss.rst",
            category="4. Embedding",
        ),
        umap_png=report(
            res("embed/umap.png"),
            caption="../report/embed_umap.rst",
            category="4. Embedding",
        ),
    log:
        logf("embed"),
    benchmark:
        bench("embed")
    params:
        embedding=config["embedding"],
        train=config["train"],
        data=config["data"],
        seed=rule_seed("embed"),
    threads: 2
    resources:
        mem_mb=mem_for(2000, 8),
        runtime=runtime_for(30, 120),
        gpu=0,
    conda:
        ENV
    script:
        "../scripts/embed.py"
