"""Rule interface_simulate: training and held-out vectors from bioml.sim.simulate_interface_features."""

from _common import run_rule


def main(snakemake):
    import bioml as bm

    cfg = dict(snakemake.params.interface)
    seed = int(snakemake.params.seed)
    n_train, n_held = int(cfg["n_simulated"]), int(cfg["n_heldout"])
    sim = bm.sim.simulate_interface_features(n_train + n_held, seed=seed)
    table = bm.interface.validate_feature_table(sim)
    bm.io.write_table(table.iloc[:n_train], snakemake.output.train, index=True)
    bm.io.write_table(table.iloc[n_train:], snakemake.output.heldout, index=True)
    bm.io.write_json({"seed": seed, "n_train": n_train, "n_heldout": n_held, **sim.uns["sim"]},
                     snakemake.output.truth)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
