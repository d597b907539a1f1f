"""Rule evaluate: bioml.metrics.integration_metrics on each representation; bar chart, PCA and UMAP panels.

Representations: PCA of the uncorrected (log-normalised) data, PCA of the corrected data,
the autoencoder latent (when the embedding is enabled) and, for simulated data, PCA of the
batch-free twin (the conservation ceiling). PCA uses the highly variable genes chosen in QC.
"""

from _common import run_rule


def _pca(adata, n_pcs, seed):
    import scanpy as sc

    mask = "highly_variable" if "highly_variable" in adata.var else None
    n_genes = int(adata.var["highly_variable"].sum()) if mask else adata.n_vars
    n = int(max(2, min(n_pcs, adata.n_obs - 1, n_genes - 1)))
    sc.pp.pca(adata, n_comps=n, mask_var=mask, random_state=seed)
    return adata.obsm["X_pca"]


def _umap(coords, n_neighbors, seed):
    import anndata as ad
    import numpy as np
    import scanpy as sc

    tmp = ad.AnnData(obs={"i": np.arange(coords.shape[0])}, obsm={"rep": coords})
    sc.pp.neighbors(tmp, use_rep="rep", n_neighbors=n_neighbors, random_state=seed)
    sc.tl.umap(tmp, random_state=seed)
    return tmp.obsm["X_umap"]


def main(snakemake):
    import logging

    import anndata as ad
    import pandas as pd

    import bioml as bm
    from bioml.errors import ConfigError

    log = logging.getLogger("bioml.rule.evaluate")
    data, e, seed = snakemake.params.data, snakemake.params.evaluation, int(snakemake.params.seed)
    batch_key = data["batch_key"]
    label_key = data["label_key"] or (data["covariates"][0] if data["covariates"] else None)
    if label_key is None:
        raise ConfigError("evaluation needs known labels: set data.label_key (or a covariate)")
    qc = ad.read_h5ad(snakemake.input.qc)
    corrected = ad.read_h5ad(snakemake.input.corrected)
    reps = {
        "pca_uncorrected": _pca(qc, e["n_pcs"], seed),
        "pca_corrected": _pca(corrected, e["n_pcs"], seed),
    }
    if "embedded" in snakemake.input.keys():
        emb = ad.read_h5ad(snakemake.input.embedded)
        reps["latent"] = emb.obsm[snakemake.params.embedding_key]
    if "batch_free" in snakemake.input.keys():
        twin = ad.read_h5ad(snakemake.input.batch_free)
        reps["pca_batch_free"] = _pca(twin, e["n_pcs"], seed)
    obs = corrected.obs[[batch_key, label_key]].copy()
    holder = ad.AnnData(obs=obs, obsm={name: x for name, x in reps.items()})
    tables = []
    for name in reps:
        log.info("metrics of %s (%d dimensions)", name, reps[name].shape[1])
        tables.append(
            bm.metrics.integration_metrics(
                holder,
                batch_key=batch_key,
                label_key=label_key,
                use_rep=name,
                n_neighbors=e["n_neighbors"],
                lisi_neighbors=e["lisi_neighbors"],
                leiden_resolution=e["leiden_resolution"],
                leiden_seeds=e["leiden_seeds"],
                kbet_alpha=e["kbet_alpha"],
                n_jobs=snakemake.threads,
            )
        )
    table = pd.concat(tables, ignore_index=True)
    for _, row in table.iterrows():
        log.info("%-16s %-20s %.4f", row["representation"], row["metric"], row["value"])

    pca = {
        f"PCA, {n.removeprefix('pca_').replace('_', '-')}": reps[n][:, :2]
        for n in reps
        if n.startswith("pca_")
    }
    umap_src = [n for n in ("pca_uncorrected", "pca_corrected", "latent") if n in reps]
    umap = {f"UMAP of {n.replace('_', ' ')}": _umap(reps[n], e["n_neighbors"], seed) for n in umap_src}
    colors = [batch_key, label_key]
    bm.io.write_table(table, snakemake.output.metrics, index=False)
    bm.io.write_figure(bm.pl.integration_metrics(table), snakemake.output.bars)
    bm.io.write_figure(
        bm.pl.embeddings(pca, obs, color=colors, title="PCA before and after correction"),
        snakemake.output.pca,
    )
    bm.io.write_figure(
        bm.pl.embeddings(umap, obs, color=colors, title="UMAP before and after correction"),
        snakemake.output.umap,
    )


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
