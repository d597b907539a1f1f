"""Rule ingest: read the configured source, validate it, write one .h5ad."""

from _common import run_rule


def main(snakemake):
    import bioml as bm

    data = snakemake.params.data
    source = "h5ad" if data["source"] == "simulate" else data["source"]
    adata = bm.io.read(
        source,
        path=snakemake.input.data,
        sample_sheet=snakemake.input.get("sample_sheet"),
        orientation=data["orientation"],
        sample_id_column=data["sample_id_column"],
    )
    adata = bm.io.validate(
        adata,
        data_type=data["data_type"],
        batch_key=data["batch_key"],
        batch_key2=data["batch_key2"],
        covariates=data["covariates"],
        batch_covariates=data["batch_covariates"],
        nan_policy=data["nan_policy"],
        source=str(snakemake.input.data),
    )
    bm.io.write_h5ad(adata, snakemake.output.h5ad)


run_rule(snakemake, main)  # noqa: F821 - injected by Snakemake
