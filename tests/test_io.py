"""Tests of bioml.io: readers, sample sheets, validation and atomic writes."""

from __future__ import annotations

import gzip
import json
import logging
import os
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp

import bioml.io as bio
from bioml.errors import ConfigError, DataValueError, InputError, SampleSheetError

SHARED = Path(__file__).resolve().parents[1].parent / "shared"
BLADDER = SHARED / "data" / "bladderbatch"

GENES = ["g1", "g2", "g3", "g4"]
SAMPLES = ["s1", "s2", "s3", "s4", "s5", "s6"]


# --------------------------------------------------------------------------- helpers


def _matrix() -> np.ndarray:
    """Genes x samples counts."""
    return np.arange(len(GENES) * len(SAMPLES), dtype=float).reshape(len(GENES), -1)


def _write_table(path: Path, df: pd.DataFrame, *, sep: str = "\t") -> Path:
    df.to_csv(path, sep=sep, index_label="gene_id")
    return path


def _genes_x_samples() -> pd.DataFrame:
    return pd.DataFrame(_matrix(), index=GENES, columns=SAMPLES)


def _sheet(**extra: list) -> pd.DataFrame:
    cols = {
        "sample_id": SAMPLES,
        "batch": [1, 1, 2, 2, 3, 3],
        "condition": ["a", "b", "a", "b", "a", "b"],
        "age": [30.0, 41.0, 52.0, 33.0, 60.0, 45.0],
    }
    cols.update(extra)
    return pd.DataFrame(cols)


def _write_sheet(path: Path, sheet: pd.DataFrame | None = None) -> Path:
    (sheet if sheet is not None else _sheet()).to_csv(
        path, sep="," if path.suffix == ".csv" else "\t", index=False
    )
    return path


def _adata(x: np.ndarray | None = None, **obs_cols: list) -> ad.AnnData:
    x = _matrix().T.copy() if x is None else x
    obs = pd.DataFrame(
        {"batch": [1, 1, 2, 2, 3, 3], "condition": list("ababab")}, index=SAMPLES
    )
    for k, v in obs_cols.items():
        obs[k] = v
    return ad.AnnData(X=x.astype(np.float32), obs=obs, var=pd.DataFrame(index=GENES))


@pytest.fixture
def table(tmp_path: Path) -> Path:
    return _write_table(tmp_path / "expr.tsv", _genes_x_samples())


@pytest.fixture
def sheet(tmp_path: Path) -> Path:
    return _write_sheet(tmp_path / "sheet.tsv")


# --------------------------------------------------------------------------- happy paths


def test_tsv_csv_gzip_and_orientations_agree(tmp_path: Path, sheet: Path) -> None:
    df = _genes_x_samples()
    tsv = _write_table(tmp_path / "a.tsv", df)
    csv = _write_table(tmp_path / "a.csv", df, sep=",")
    tsv_gz = tmp_path / "a.tsv.gz"
    with gzip.open(tsv_gz, "wt") as fh:
        df.to_csv(fh, sep="\t", index_label="gene_id")
    csv_gz = tmp_path / "a.csv.gz"
    df.to_csv(csv_gz, index_label="gene_id")  # pandas gzips from the suffix
    txt_t = _write_table(tmp_path / "t.txt", df.T)

    ref = bio.read_table(tsv, sample_sheet=sheet)
    assert ref.shape == (6, 4)
    assert list(ref.obs_names) == SAMPLES and list(ref.var_names) == GENES
    assert ref.X.dtype == np.float32 and isinstance(ref.X, np.ndarray)
    np.testing.assert_array_equal(ref.X, _matrix().T)
    assert list(ref.obs.columns) == ["batch", "condition", "age"]
    assert ref.uns["bioml"]["ingest"]["input"]["source"] == "table"
    others = [
        bio.read_table(csv, sample_sheet=sheet),
        bio.read_table(tsv_gz, sample_sheet=sheet),
        bio.read_table(csv_gz, sample_sheet=sheet),
        bio.read_table(txt_t, sample_sheet=sheet, orientation="samples_x_genes"),
        bio.read("table", path=csv_gz, sample_sheet=sheet),
    ]
    for other in others:
        np.testing.assert_array_equal(other.X, ref.X)
        assert list(other.obs_names) == SAMPLES and list(other.var_names) == GENES
        pd.testing.assert_frame_equal(other.obs, ref.obs)


def test_float64_and_r_style_header(tmp_path: Path) -> None:
    p = tmp_path / "r.tsv"
    # R's write.table: the header has no field for the row names
    p.write_text("s1\ts2\ng1\t0.1\t2\ng2\t3\t4.25\n")
    a = bio.read_table(p, dtype="float64")
    assert a.X.dtype == np.float64
    assert list(a.obs_names) == ["s1", "s2"] and list(a.var_names) == ["g1", "g2"]
    assert a.X[0, 0] == 0.1


def test_missing_values_become_nan(tmp_path: Path) -> None:
    p = tmp_path / "na.csv"
    p.write_text("gene,s1,s2\ng1,1,NA\ng2,,4\n")
    a = bio.read_table(p)
    assert np.isnan(a.X[1, 0]) and np.isnan(a.X[0, 1])


def test_h5ad_round_trip(tmp_path: Path, table: Path, sheet: Path) -> None:
    a = bio.validate(bio.read_table(table, sample_sheet=sheet), covariates=["condition"])
    out = bio.write_h5ad(a, tmp_path / "sub" / "x.h5ad")
    assert out.exists() and not [f for f in out.parent.iterdir() if f.name.startswith(".")]
    b = bio.read("h5ad", path=out)
    np.testing.assert_array_equal(b.X, a.X)
    pd.testing.assert_frame_equal(b.obs, a.obs)
    assert b.uns["bioml"]["ingest"]["params"]["data_type"] == "counts"
    assert b.uns["bioml"]["ingest"]["input"] == {"source": "h5ad", "path": str(out)}


def _write_10x(folder: Path, *, legacy: bool = False) -> tuple[sp.csr_matrix, list, list]:
    folder.mkdir()
    rng = np.random.default_rng(0)
    genes_x_cells = sp.random(5, 7, density=0.5, format="csr", random_state=rng)
    genes_x_cells.data = np.round(genes_x_cells.data * 10) + 1
    gene_ids = [f"ENSG{i:04d}" for i in range(5)]
    symbols = ["A", "B", "C", "D", "E"]
    barcodes = [f"AAAC-{i}" for i in range(7)]
    if legacy:
        scipy.io.mmwrite(folder / "matrix.mtx", genes_x_cells)
        (folder / "genes.tsv").write_text(
            "".join(f"{g}\t{s}\n" for g, s in zip(gene_ids, symbols))
        )
        (folder / "barcodes.tsv").write_text("".join(f"{b}\n" for b in barcodes))
    else:
        scipy.io.mmwrite(folder / "matrix.mtx", genes_x_cells)
        with open(folder / "matrix.mtx", "rb") as src, gzip.open(
            folder / "matrix.mtx.gz", "wb"
        ) as dst:
            dst.write(src.read())
        (folder / "matrix.mtx").unlink()
        with gzip.open(folder / "features.tsv.gz", "wt") as fh:
            fh.writelines(f"{g}\t{s}\tGene Expression\n" for g, s in zip(gene_ids, symbols))
        with gzip.open(folder / "barcodes.tsv.gz", "wt") as fh:
            fh.writelines(f"{b}\n" for b in barcodes)
    return genes_x_cells, symbols, barcodes


@pytest.mark.parametrize("legacy", [False, True])
def test_10x_folder(tmp_path: Path, legacy: bool) -> None:
    m, symbols, barcodes = _write_10x(tmp_path / "mtx", legacy=legacy)
    sheet = pd.DataFrame({"barcode": barcodes, "batch": ["x", "y"] * 3 + ["x"]})
    a = bio.read("10x", path=tmp_path / "mtx", sample_sheet=sheet, sample_id_column="barcode")
    assert a.shape == (7, 5)
    assert list(a.var_names) == symbols and list(a.obs_names) == barcodes
    assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32
    np.testing.assert_array_equal(a.X.toarray(), m.T.toarray())
    assert list(a.obs["batch"]) == list(sheet["batch"])
    bio.validate(a, data_type="counts")


def test_10x_folder_missing_files(tmp_path: Path) -> None:
    folder = tmp_path / "mtx"
    _write_10x(folder)
    (folder / "barcodes.tsv.gz").unlink()
    with pytest.raises(InputError, match=r"10x folder '.*mtx' lacks .*barcodes\.tsv\.gz"):
        bio.read_10x(folder)


def test_10x_h5(tmp_path: Path) -> None:
    h5py = pytest.importorskip("h5py")
    m = sp.random(5, 7, density=0.5, format="csc", random_state=0)  # genes x cells
    m.data = np.round(m.data * 10) + 1
    path = tmp_path / "filtered_feature_bc_matrix.h5"
    with h5py.File(path, "w") as f:
        g = f.create_group("matrix")
        g["data"] = m.data.astype(np.int32)
        g["indices"], g["indptr"], g["shape"] = m.indices, m.indptr, np.array(m.shape)
        g["barcodes"] = np.array([f"B{i}".encode() for i in range(7)])
        ft = g.create_group("features")
        ft["id"] = np.array([f"E{i}".encode() for i in range(5)])
        ft["name"] = np.array([b"A", b"B", b"A", b"D", b"E"])
        ft["feature_type"] = np.array([b"Gene Expression"] * 5)
        ft["genome"] = np.array([b"hg"] * 5)
    a = bio.read("10x", path=path)
    assert list(a.var_names) == ["A", "B", "A-1", "D", "E"]
    assert sp.isspmatrix_csr(a.X) and a.X.dtype == np.float32
    np.testing.assert_array_equal(a.X.toarray(), m.T.toarray())


def test_validate_view() -> None:
    a = _adata()
    v = bio.validate(a[:4], batch_key=None)
    assert not v.is_view and v.n_obs == 4


def test_atomic_write_failure_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    a = _adata()
    target = tmp_path / "out.h5ad"

    def boom(path, **kwargs):
        Path(path).write_bytes(b"partial")  # a half-written temp file
        raise RuntimeError("disk full")

    monkeypatch.setattr(a, "write_h5ad", boom)
    with pytest.raises(RuntimeError, match="disk full"):
        bio.write_h5ad(a, target)
    assert list(tmp_path.iterdir()) == []

    target.write_bytes(b"old")  # an existing file is not clobbered
    with pytest.raises(RuntimeError, match="disk full"):
        bio.write_h5ad(a, target)
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]


def test_atomic_path_names_and_helpers(tmp_path: Path) -> None:
    with bio.atomic_path(tmp_path / "deep" / "t.tsv.gz") as tmp:
        assert tmp.parent == tmp_path / "deep"
        assert tmp.name.startswith(".t.tsv.gz.tmp-") and tmp.name.endswith(".tsv.gz")
        assert not tmp.exists()
        tmp.write_bytes(b"x")
    assert (tmp_path / "deep" / "t.tsv.gz").read_bytes() == b"x"

    df = pd.DataFrame({"a": [1.5, 2.0]}, index=["r1", "r2"])
    out = bio.write_table(df, tmp_path / "t.csv.gz")
    pd.testing.assert_frame_equal(pd.read_csv(out, index_col=0), df)
    out = bio.write_json(
        {"n": np.int64(3), "x": np.float32(0.5), "v": np.arange(2), "p": Path("a")},
        tmp_path / "j.json",
    )
    assert json.loads(out.read_text()) == {"n": 3, "x": 0.5, "v": [0, 1], "p": "a"}
    with pytest.raises(TypeError):
        bio.write_json({"o": object()}, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    assert sorted(f.name for f in tmp_path.iterdir()) == ["deep", "j.json", "t.csv.gz"]


def test_validate_types_and_record(table: Path, sheet: Path) -> None:
    a = bio.read_table(table, sample_sheet=sheet)
    out = bio.validate(a, covariates=["condition", "age"])
    assert out is a
    assert isinstance(a.obs["batch"].dtype, pd.CategoricalDtype)
    assert list(a.obs["batch"].cat.categories) == ["1", "2", "3"]
    assert list(a.obs["condition"].cat.categories) == ["a", "b"]
    assert a.obs["age"].dtype == np.float64
    rec = a.uns["bioml"]["ingest"]
    assert rec["params"]["covariates"] == ["condition", "age"]
    assert rec["column_kinds"] == {"batch": "categorical", "condition": "categorical",
                                   "age": "continuous"}
    assert rec["n_obs"] == 6 and rec["n_vars"] == 4


def test_validate_copy_and_numeric_batch_order() -> None:
    batch = [1, 2, 10, 1, 2, 10]
    a = _adata(batch=batch)
    b = bio.validate(a, copy=True)
    assert b is not a and a.obs["batch"].dtype == np.int64
    assert list(b.obs["batch"].cat.categories) == ["1", "2", "10"]


def test_validate_sparse_checks() -> None:
    x = sp.csr_matrix(_matrix().T)
    x.data[3] = -1.0
    a = ad.AnnData(X=x, obs=pd.DataFrame({"batch": [1, 1, 2, 2, 3, 3]}, index=SAMPLES),
                   var=pd.DataFrame(index=GENES))
    with pytest.raises(DataValueError, match=r"1 negative value \(first at sample 's2'"):
        bio.validate(a)


# --------------------------------------------------------------------------- bad files


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"expression table '.*nope\.tsv' does not exist"):
        bio.read_table(tmp_path / "nope.tsv")


def test_directory_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"'.*' is a directory, expected a file"):
        bio.read_table(tmp_path)


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root reads all")
def test_unreadable_file(table: Path) -> None:
    table.chmod(0)
    try:
        with pytest.raises(InputError, match=r"cannot read expression table '.*expr\.tsv'"):
            bio.read_table(table)
    finally:
        table.chmod(0o644)


def test_unreadable_file_permission_error(table: Path, monkeypatch) -> None:
    # the same, simulated, so that it also runs as root
    from bioml.io import _readers

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(_readers, "open", denied, raising=False)
    with pytest.raises(
        InputError, match=r"cannot read expression table '.*expr\.tsv': Permission denied"
    ):
        bio.read_table(table)


def test_empty_file(tmp_path: Path) -> None:
    p = tmp_path / "empty.tsv"
    p.write_text("")
    with pytest.raises(InputError, match=r"expression table '.*empty\.tsv' is empty"):
        bio.read_table(p)


def test_empty_gzip(tmp_path: Path) -> None:
    p = tmp_path / "empty.tsv.gz"
    with gzip.open(p, "wt"):
        pass
    with pytest.raises(InputError, match=r"'.*empty\.tsv\.gz' is empty \(no header line\)"):
        bio.read_table(p)


def test_header_only(tmp_path: Path) -> None:
    p = tmp_path / "h.tsv"
    p.write_text("gene_id\ts1\ts2\n")
    with pytest.raises(InputError, match=r"'.*h\.tsv' has a header but no data rows"):
        bio.read_table(p)


def test_single_column_wrong_separator(tmp_path: Path) -> None:
    p = tmp_path / "comma.tsv"  # a CSV file named .tsv
    p.write_text("gene_id,s1,s2\ng1,1,2\n")
    with pytest.raises(InputError, match=r"'.*comma\.tsv' has a single column .*sep='\\t'"):
        bio.read_table(p)


def test_unknown_suffix(tmp_path: Path) -> None:
    p = tmp_path / "x.dat"
    p.write_text("a\tb\n")
    with pytest.raises(InputError, match=r"separator of expression table '.*x\.dat'"):
        bio.read_table(p)


def test_not_gzip_despite_suffix(tmp_path: Path) -> None:
    p = tmp_path / "plain.tsv.gz"
    _write_table(tmp_path / "plain.tsv", _genes_x_samples()).rename(p)
    with pytest.raises(InputError, match=r"'.*plain\.tsv\.gz' ends in \.gz but is not gzip"):
        bio.read_table(p)


def test_truncated_gzip(tmp_path: Path) -> None:
    p = tmp_path / "cut.tsv.gz"
    with gzip.open(p, "wt") as fh:
        _genes_x_samples().to_csv(fh, sep="\t")
    p.write_bytes(p.read_bytes()[:40])
    with pytest.raises(InputError, match=r"'.*cut\.tsv\.gz' is a corrupt or truncated gzip"):
        bio.read_table(p)


def test_not_text(tmp_path: Path) -> None:
    p = tmp_path / "latin1.tsv"
    p.write_bytes(b"id\ts1\ng\xe9ne\t1\n")
    with pytest.raises(InputError, match=r"'.*latin1\.tsv' is not UTF-8 text"):
        bio.read_table(p)


def test_ragged_rows(tmp_path: Path) -> None:
    p = tmp_path / "rag.tsv"
    p.write_text("id\ts1\ts2\ng1\t1\t2\ng2\t1\t2\t3\t4\n")
    with pytest.raises(InputError, match=r"cannot parse expression table '.*rag\.tsv'"):
        bio.read_table(p)


def test_non_numeric_cell(tmp_path: Path) -> None:
    df = _genes_x_samples().astype(object)
    df.loc["g2", "s3"] = "abc"
    df.loc["g4", "s1"] = "1,5"
    p = _write_table(tmp_path / "bad.tsv", df)
    with pytest.raises(
        DataValueError,
        match=r"'.*bad\.tsv' holds 2 non-numeric cells; the first is at row 'g2', "
        r"column 's3': 'abc'",
    ):
        bio.read_table(p)


def test_no_numeric_columns(tmp_path: Path) -> None:
    p = _write_sheet(tmp_path / "sheet_as_data.tsv", _sheet().drop(columns=["batch", "age"]))
    with pytest.raises(InputError, match=r"'.*sheet_as_data\.tsv' has no numeric columns") as e:
        bio.read_table(p)
    assert type(e.value) is InputError


def test_duplicated_gene_names(tmp_path: Path) -> None:
    df = _genes_x_samples()
    df.index = ["g1", "g2", "g1", "g4"]
    p = _write_table(tmp_path / "dupg.tsv", df)
    with pytest.raises(
        InputError, match=r"'.*dupg\.tsv' has duplicated gene names \(rows\): 'g1' \(2x\)"
    ):
        bio.read_table(p)


def test_duplicated_sample_names(tmp_path: Path) -> None:
    p = tmp_path / "dups.tsv"
    p.write_text("gene\ts1\ts2\ts1\ng1\t1\t2\t3\n")
    with pytest.raises(
        InputError, match=r"'.*dups\.tsv' has duplicated sample names \(columns\): 's1' \(2x\)"
    ):
        bio.read_table(p)


def test_bad_h5ad(tmp_path: Path) -> None:
    p = tmp_path / "x.h5ad"
    p.write_text("not hdf5")
    with pytest.raises(InputError, match=r"cannot read h5ad file '.*x\.h5ad' as AnnData"):
        bio.read_h5ad(p)


def test_read_unknown_source(table: Path) -> None:
    with pytest.raises(ConfigError, match=r"source='loom' is not one of"):
        bio.read("loom", path=table)


# --------------------------------------------------------------------------- sample sheets


def test_sample_missing_from_sheet(table: Path, tmp_path: Path) -> None:
    s = _write_sheet(tmp_path / "short.csv", _sheet().iloc[:4])
    with pytest.raises(
        SampleSheetError,
        match=r"2 of 6 samples in '.*expr\.tsv' are missing from sample sheet "
        r"'.*short\.csv' \(column 'sample_id'\): 's5', 's6'",
    ):
        bio.read_table(table, sample_sheet=s)


def test_sheet_rows_without_data(table: Path, tmp_path: Path, caplog) -> None:
    extra = pd.concat([_sheet(), _sheet().iloc[:1].assign(sample_id="s99")])
    s = _write_sheet(tmp_path / "long.tsv", extra)
    with pytest.raises(
        SampleSheetError,
        match=r"1 row of sample sheet '.*long\.tsv' has no sample in '.*expr\.tsv': 's99'; "
        r".*allow_extra_sheet_rows=True",
    ):
        bio.read_table(table, sample_sheet=s)
    with caplog.at_level(logging.WARNING, logger="bioml.io"):
        a = bio.read_table(table, sample_sheet=s, allow_extra_sheet_rows=True)
    assert a.n_obs == 6 and "dropping 1 row(s)" in caplog.text and "'s99'" in caplog.text
    assert a.uns["bioml"]["ingest"]["input"]["dropped_sheet_rows"] == ["s99"]


def test_sheet_without_id_column(table: Path, tmp_path: Path) -> None:
    s = _write_sheet(tmp_path / "noid.tsv", _sheet().rename(columns={"sample_id": "id"}))
    with pytest.raises(
        SampleSheetError, match=r"sample sheet '.*noid\.tsv' has no column 'sample_id' "
        r"\(columns: 'id', 'batch'"
    ):
        bio.read_table(table, sample_sheet=s)


def test_sheet_duplicated_ids(tmp_path: Path) -> None:
    s = _write_sheet(tmp_path / "dup.tsv", pd.concat([_sheet(), _sheet().iloc[[2]]]))
    with pytest.raises(
        SampleSheetError,
        match=r"'.*dup\.tsv' has duplicated sample ids in column 'sample_id': 's3' \(2x\)",
    ):
        bio.read_sample_sheet(s)


def test_sheet_ids_read_as_text(tmp_path: Path) -> None:
    s = _write_sheet(tmp_path / "n.csv", pd.DataFrame({"sample_id": [1, 2], "b": [1, 2]}))
    df = bio.read_sample_sheet(s)
    assert list(df.index) == ["1", "2"] and df["b"].dtype == np.int64


# --------------------------------------------------------------------------- validation: values


def _with(x_value: float, where: tuple[int, int] = (2, 1)) -> ad.AnnData:
    x = _matrix().T.copy()
    x[where] = x_value
    return _adata(x)


def test_nan_error() -> None:
    with pytest.raises(
        DataValueError,
        match=r"'demo' holds 1 NaN \(missing\) value \(first at sample 's3', gene 'g2'\); "
        r"set nan_policy",
    ):
        bio.validate(_with(np.nan), source="demo")


def test_nan_drop_genes(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="bioml.io"):
        a = bio.validate(_with(np.nan), nan_policy="drop_genes")
    assert list(a.var_names) == ["g1", "g3", "g4"]
    assert a.uns["bioml"]["ingest"]["dropped_genes"] == ["g2"]
    assert "dropping 1 of 4 genes" in caplog.text


def test_nan_drop_all_genes() -> None:
    x = _matrix().T.copy()
    x[0, :] = np.nan
    with pytest.raises(DataValueError, match=r"every one of its 4 genes holds a NaN"):
        bio.validate(_adata(x), nan_policy="drop_genes")


def test_nan_zero() -> None:
    a = bio.validate(_with(np.nan), nan_policy="zero")
    assert a.X[2, 1] == 0 and a.uns["bioml"]["ingest"]["n_nan_zeroed"] == 1


def test_nan_zero_not_for_log() -> None:
    with pytest.raises(ConfigError, match=r"nan_policy='zero' is allowed for "
                                          r"data_type='counts' only"):
        bio.validate(_with(np.nan), data_type="log", nan_policy="zero")


@pytest.mark.parametrize("policy", ["error", "drop_genes", "zero"])
def test_inf_always_error(policy: str) -> None:
    with pytest.raises(
        DataValueError,
        match=r"'demo' holds 1 infinite value \(first at sample 's3', gene 'g2', value -inf\)",
    ):
        bio.validate(_with(-np.inf), nan_policy=policy, source="demo")


def test_negative_counts() -> None:
    with pytest.raises(
        DataValueError,
        match=r"'demo' holds 1 negative value \(first at sample 's3', gene 'g2', value -2\) "
        r"but data_type is 'counts'",
    ):
        bio.validate(_with(-2.0), source="demo")
    bio.validate(_with(-2.0), data_type="log")  # fine on the log scale


def test_non_integer_counts_warn(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="bioml.io"):
        bio.validate(_with(2.5))
    assert "1 values are not integers" in caplog.text and "raw counts" in caplog.text


def test_log_data_looks_unlogged(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="bioml.io"):
        bio.validate(_with(5000.0), data_type="log")
    assert "look unlogged" in caplog.text


def test_empty_data() -> None:
    a = _adata()[:, []].copy()
    with pytest.raises(InputError, match=r"'demo' is empty: 6 samples x 0 genes"):
        bio.validate(a, source="demo")


def test_validate_duplicated_names() -> None:
    a = _adata()
    a.var_names = ["g1", "g2", "g2", "g4"]
    with pytest.raises(InputError, match=r"duplicated gene names \(var_names\): 'g2' \(2x\)"):
        bio.validate(a)
    a = _adata()
    a.obs_names = ["s1", "s1", "s3", "s4", "s5", "s6"]
    with pytest.raises(InputError, match=r"duplicated sample names \(obs_names\): 's1'"):
        bio.validate(a)


# --------------------------------------------------------------------------- validation: obs


def test_missing_batch_column() -> None:
    with pytest.raises(
        SampleSheetError,
        match=r"batch column 'lane' is not in the obs of 'demo'; available columns: "
        r"'batch', 'condition'",
    ):
        bio.validate(_adata(), batch_key="lane", source="demo")


def test_missing_batch_key2_column() -> None:
    with pytest.raises(SampleSheetError, match=r"batch column 'run' is not in the obs"):
        bio.validate(_adata(), batch_key2="run")


def test_missing_covariate_column() -> None:
    with pytest.raises(
        SampleSheetError, match=r"covariate column 'sex' is not in the obs of 'demo'"
    ):
        bio.validate(_adata(), covariates=["condition", "sex"], source="demo")


def test_missing_batch_covariate_column() -> None:
    with pytest.raises(SampleSheetError, match=r"batch covariate column 'rin' is not in"):
        bio.validate(_adata(), batch_covariates="rin")


def test_single_level_batch() -> None:
    with pytest.raises(
        SampleSheetError,
        match=r"batch column 'batch' \(batch_key\) of 'demo' has a single level 'b1' "
        r"\(all 6 samples\): nothing to correct",
    ):
        bio.validate(_adata(batch=["b1"] * 6), source="demo")


def test_single_level_covariate() -> None:
    with pytest.raises(
        SampleSheetError,
        match=r"covariate 'tissue' of 'demo' has a single level 'liver' \(all 6 samples\)",
    ):
        bio.validate(_adata(tissue=["liver"] * 6), covariates=["tissue"], source="demo")


def test_constant_continuous_covariate() -> None:
    with pytest.raises(SampleSheetError, match=r"covariate 'age' of 'demo' is constant"):
        bio.validate(_adata(age=[40.0] * 6), covariates=["age"], source="demo")


def test_nan_in_batch_column() -> None:
    with pytest.raises(
        SampleSheetError,
        match=r"batch column 'batch' of 'demo' has missing values for 2 samples: 's2', 's5'",
    ):
        bio.validate(_adata(batch=[1, np.nan, 2, 2, np.nan, 3]), source="demo")


def test_nan_in_covariate_column() -> None:
    with pytest.raises(
        SampleSheetError, match=r"covariate column 'condition' of 'demo' has missing values"
    ):
        bio.validate(_adata(condition=["a", None, "a", "b", "a", "b"]),
                     covariates="condition", source="demo")


def test_batch_covariate_must_be_numeric() -> None:
    with pytest.raises(SampleSheetError, match=r"batch covariate 'lane' of 'demo' must be "
                                               r"numeric"):
        bio.validate(_adata(lane=list("xyzxyz")), batch_covariates=["lane"], source="demo")
    a = bio.validate(_adata(rin=[7.1, 8.0, 6.5, 9.2, 7.7, 8.8]), batch_covariates=["rin"])
    assert a.obs["rin"].dtype == np.float64


def test_column_in_two_roles() -> None:
    with pytest.raises(ConfigError, match=r"column 'batch' is given as both batch_key and "
                                          r"covariates"):
        bio.validate(_adata(), covariates=["batch"])


def test_bad_option_values() -> None:
    with pytest.raises(ConfigError, match=r"data_type='raw' is not one of 'counts', 'log'"):
        bio.validate(_adata(), data_type="raw")
    with pytest.raises(ConfigError, match=r"nan_policy='drop'"):
        bio.validate(_adata(), nan_policy="drop")


# --------------------------------------------------------------------------- real data


def test_bladderbatch() -> None:
    expr, pheno = BLADDER / "bladder_expr.tsv.gz", BLADDER / "bladder_pheno.tsv"
    if not (expr.exists() and pheno.exists()):
        pytest.skip(f"bladderbatch data not found under {BLADDER}")
    a = bio.read("table", path=expr, sample_sheet=pheno)
    a = bio.validate(a, data_type="log", batch_key="batch", covariates=["cancer"])
    assert a.shape == (57, 22283)
    assert isinstance(a.obs["batch"].dtype, pd.CategoricalDtype)
    assert list(a.obs["batch"].cat.categories) == ["1", "2", "3", "4", "5"]
    assert a.obs["cancer"].cat.categories.size == 3
    assert a.X.dtype == np.float32 and np.isfinite(a.X).all()
    assert 0 < a.uns["bioml"]["ingest"]["max_value"] < 20


# ----------------------------------------------- the simulator's files read back exactly


@pytest.mark.parametrize("fmt", ["10x", "table_gs", "table_sg", "h5ad"])
def test_reads_what_the_simulator_writes(tmp_path, fmt):
    import bioml.sim as sim

    truth = sim.simulate_counts(n_obs=40, n_vars=60, n_batches=2, n_conditions=2, seed=5)
    sheet = sim.write_sample_sheet(truth, tmp_path / "sheet.tsv")
    if fmt == "10x":
        a = bio.read("10x", path=sim.write_10x(truth, tmp_path / "tenx"), sample_sheet=sheet)
    elif fmt == "h5ad":
        bio.write_h5ad(truth, tmp_path / "x.h5ad")
        a = bio.read("h5ad", path=tmp_path / "x.h5ad")
    else:
        orientation = "genes_x_samples" if fmt == "table_gs" else "samples_x_genes"
        path = sim.write_table(truth, tmp_path / "expr.csv.gz", orientation=orientation)
        a = bio.read("table", path=path, sample_sheet=sheet, orientation=orientation)
    a = bio.validate(a, data_type="counts", batch_key="batch", covariates=["condition"])
    assert list(a.obs_names) == list(truth.obs_names)
    assert list(a.var_names) == list(truth.var_names)
    X = a.X.toarray() if sp.issparse(a.X) else a.X
    np.testing.assert_array_equal(X, truth.X)
    assert (a.obs["batch"].astype(str) == truth.obs["batch"].astype(str)).all()
    assert a.obs["condition"].dtype == "category"
