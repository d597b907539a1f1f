"""Rule embed: bioml.tl.autoencoder on the corrected data; history, loss curves, latent UMAP, model."""

from _common import run_rule


def main(snakemake):
    from pathlib import Path

    import anndata as ad
    import scanpy as sc

    import bioml as bm
    from bioml.tl import embedding_figure
    from bioml.train import plot_history

    emb = dict(snakemake.params.embedding)
    train = dict(snakemake.params.train)
    data = dict(snakemake.params.data)
    seed = int(snakemake.params.seed)
    batch_key = data.get("batch_key")
    label_key = data.get("label_key")
    key_added = emb.get("key_added", "X_bae")
    thr = emb.get("anomaly_threshold", {"method": "quantile", "value": 0.99})
    ckpt = train.get("checkpoint_dir")

    adata = ad.read_h5ad(snakemake.input.h5ad)
    model = bm.tl.autoencoder(
        adata,
        layer=emb.get("layer"),
        batch_key=batch_key,
        domain_bn=emb.get("domain_bn", False),
        domain_affine=emb.get("domain_affine", True),
        hidden=tuple(emb.get("hidden", (512, 128))),
        latent=emb.get("latent", 32),
        dropout=emb.get("dropout", 0.1),
        activation=emb.get("activation", "relu"),
        anomaly_threshold=(thr["method"], thr["value"]),
        key_added=key_added,
        epochs=train.get("epochs", 100),
        batch_size=train.get("batch_size", 256),
        lr=train.get("lr", 1e-3),
        optimizer=train.get("optimizer", "adam"),
        weight_decay=train.get("weight_decay", 0.0),
        schedule=train.get("schedule", "constant"),
        schedule_kwargs=train.get("schedule_kwargs") or None,
        clip_grad_norm=train.get("clip_grad_norm"),
        val_fraction=train.get("val_fraction", 0.1),
        early_stopping_patience=train.get("early_stopping_patience", 10),
        balance_key=emb.get("balance_key"),
        device=train.get("device", "auto"),
        precision=train.get("precision", "auto"),
        checkpoint_dir=ckpt,
        checkpoint_every=train.get("checkpoint_every") if ckpt else None,
        resume=bool(train.get("resume", False)) if ckpt else False,
        seed=seed,
        progress=False,
    )
    sc.pp.neighbors(adata, use_rep=key_added, random_state=seed)
    sc.tl.umap(adata, random_state=seed)
    prefix = key_added.removeprefix("X_")
    adata.obsm[f"{key_added}_umap"] = adata.obsm.pop("X_umap")
    colors = [c for c in (batch_key, label_key) if c and c in adata.obs]
    colors.append(f"{prefix}_anomaly")
    fig_umap = embedding_figure(adata, basis=f"{key_added}_umap", color=colors,
                                title=f"UMAP of the autoencoder latent ({key_added})")
    fig_loss = plot_history(model.history, title="autoencoder training")

    bm.io.write_h5ad(adata, snakemake.output.h5ad)
    bm.io.write_table(model.history, snakemake.output.history, index=False)
    bm.io.write_figure(fig_loss, snakemake.output.loss_png)
    bm.io.write_figure(fig_umap, snakemake.output.umap_png)
    Path(snakemake.output.model).parent.mkdir(parents=True, exist_ok=True)
    model.save(snakemake.output.model)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
