"""Rule interface_evaluate: bioml.interface.evaluate; metrics, KS, generated vectors, figures."""

from _common import run_rule


def main(snakemake):
    import bioml as bm

    cfg = dict(snakemake.params.interface)
    seed = int(snakemake.params.seed)
    simulated = not cfg.get("table")
    label = "simulated" if simulated else "table"
    gan = bm.interface.InterfaceGAN.load(snakemake.input.model)
    heldout = bm.interface.validate_feature_table(snakemake.input.heldout)
    train = bm.interface.validate_feature_table(snakemake.input.train)
    real = bm.interface.validate_feature_table(snakemake.input.real, source=f"'{snakemake.input.real}'")
    reference = None
    if simulated:  # a fresh draw from the known distribution: the noise floor of the metrics
        reference = bm.sim.simulate_interface_features(len(heldout), seed=seed)
    metrics, ks, generated = bm.interface.evaluate(
        gan, heldout, data_label=label, reference=reference, real=real,
        n_generate=cfg["n_generate"], seed=seed, n_permutations=cfg["n_permutations"])
    bm.io.write_table(metrics, snakemake.output.metrics, index=False)
    bm.io.write_table(ks, snakemake.output.ks, index=False)
    bm.io.write_table(generated, snakemake.output.generated, index=False)
    held_name = f"{label} (held out)"
    fig_m = bm.pl.feature_marginals(heldout, generated, points=real,
                                    labels=(held_name, "generated", "real complexes"),
                                    title="interface features: held-out vs generated")
    sets = {f"{label} (training)": gan.standardise(train), held_name: gan.standardise(heldout),
            "generated": gan.standardise(generated), "real complexes": gan.standardise(real)}
    fig_p = bm.pl.feature_projection(sets, seed=seed)
    bm.io.write_figure(fig_m, snakemake.output.marginals_png)
    bm.io.write_figure(fig_p, snakemake.output.projection_png)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
