"""Rule flux_vae: train bioml.flux.FluxVAE on the training fluxes; model, history, loss curves."""

from _common import run_rule


def main(snakemake):
    import anndata as ad

    import bioml as bm
    from bioml.train import plot_history

    flux = dict(snakemake.params.flux)
    train = dict(snakemake.params.train)

    def pick(key):
        return train.get(key) if flux.get(key) is None else flux[key]

    adata = ad.read_h5ad(snakemake.input.h5ad)
    vae = bm.flux.FluxVAE(
        flux["model"], constraint=flux["constraint"], latent=flux["latent"], hidden=tuple(flux["hidden"]),
        activation=flux["activation"], beta=flux["beta"], kl_warmup_epochs=flux["kl_warmup_epochs"],
        mass_balance_weight=flux["mass_balance_weight"], bounds_weight=flux["bounds_weight"],
        rtol=flux["rtol"], prior=flux["prior"], prior_components=flux["prior_components"],
        seed=int(snakemake.params.seed),
    )
    ckpt = train.get("checkpoint_dir")
    vae.fit(
        adata, epochs=pick("epochs"), batch_size=pick("batch_size"), lr=pick("lr"),
        optimizer=train.get("optimizer", "adam"), weight_decay=train.get("weight_decay", 0.0),
        schedule=train.get("schedule", "constant"), schedule_kwargs=train.get("schedule_kwargs") or None,
        clip_grad_norm=train.get("clip_grad_norm"), val_fraction=train.get("val_fraction", 0.1),
        early_stopping_patience=flux.get("early_stopping_patience"), device=train.get("device", "auto"),
        precision="32", checkpoint_dir=f"{ckpt}/flux_vae" if ckpt else None,
        checkpoint_every=train.get("checkpoint_every") if ckpt else None,
        resume=bool(train.get("resume", False)) if ckpt else False, progress=False,
    )
    bm.io.write_table(vae.history, snakemake.output.history, index=False)
    bm.io.write_figure(plot_history(vae.history, title=f"flux VAE ({flux['constraint']})"),
                       snakemake.output.loss_png)
    vae.save(snakemake.output.model)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
