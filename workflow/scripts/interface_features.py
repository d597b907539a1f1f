"""Rule interface_features: bioml.interface.extract_features over the configured structures."""

from _common import run_rule


def main(snakemake):
    import logging

    import pandas as pd

    import bioml as bm

    cfg = dict(snakemake.params.interface)
    paths = list(snakemake.input.structures) or [str(p) for p in bm.interface.example_structures()]
    chains = cfg.get("chains")
    frames = []
    for p in paths:
        frames.append(bm.interface.extract_features(
            p, chains=chains, interface_cutoff=cfg["interface_cutoff"],
            contact_cutoff=cfg["contact_cutoff"], atom_contact_cutoff=cfg["atom_contact_cutoff"]))
    table = pd.concat(frames, ignore_index=True)
    logging.getLogger("bioml.rule").info("%d interfaces from %d structures", len(table), len(paths))
    bm.io.write_table(table, snakemake.output.table, index=False)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
