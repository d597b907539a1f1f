"""Rule interface_gan: train bioml.interface.InterfaceGAN; model, history, loss/Wasserstein plot."""

from _common import run_rule


def main(snakemake):
    import bioml as bm

    cfg = dict(snakemake.params.interface)
    train = dict(snakemake.params.train)
    data = bm.interface.validate_feature_table(snakemake.input.train, source=f"'{snakemake.input.train}'")
    gan = bm.interface.InterfaceGAN(
        variant=cfg["variant"], latent=cfg["latent"], hidden=cfg["hidden"], n_critic=cfg["n_critic"],
        gp_weight=cfg["gp_weight"], seed=int(snakemake.params.seed),
    )
    gan.fit(data, epochs=cfg["epochs"], batch_size=cfg["batch_size"], lr=cfg["lr"],
            val_fraction=cfg["val_fraction"], device=train.get("device", "auto"), progress=False)
    bm.io.write_table(gan.history, snakemake.output.history, index=False)
    title = f"interface GAN ({cfg['variant']}, n_critic={cfg['n_critic']})"
    bm.io.write_figure(bm.pl.gan_training(gan.history, title=title), snakemake.output.loss_png)
    gan.save(snakemake.output.model)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
