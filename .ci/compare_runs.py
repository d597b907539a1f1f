#!/usr/bin/env python
"""Compare two results trees of the same config (e.g. a SLURM run and a local run) by values.

    python .ci/compare_runs.py RESULTS_A RESULTS_B [--rtol 0] [--atol 0]

Both trees must hold the same files (``benchmarks/`` left out: timings). Compared by value,
not by bytes (file bytes hold timestamps and paths):

- ``.h5ad``: obs/var names, ``X``, every ``layers``/``obsm``/``varm``/``obsp`` entry, the
  ``obs``/``var`` tables and ``uns`` (recursively);
- ``.tsv``/``.csv`` tables and ``.json`` files, column by column / key by key;
- ``.pt`` files (torch payloads: weights and settings), tensor by tensor.

Timing values (keys or columns named ``seconds``, ``*_seconds``, ``time``, ``elapsed``, and
rows of tidy tables labelled like ``valid_samples_per_second``) are skipped. Figures
(``.png``, ``.html``) are only checked to exist in both trees.

The default tolerance is zero: the same seed on the same machine gives the same bits. Prints
one line per file and, at the end, whether every value matched bitwise; exit status 1 on any
difference beyond ``--rtol``/``--atol``.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

TIMING = re.compile(r"(^|_)(seconds|time|elapsed|duration)$")
# rows of tidy tables (metric, value) that hold a speed, e.g. flux's valid_samples_per_second
TIMING_ROW = re.compile(r"(?:^|_)(?:seconds|per_second|time|elapsed|duration)$")
SKIP_DIRS = {"benchmarks"}
FIGURES = {".png", ".pdf", ".svg", ".html"}


class Diff:
    """Collects differences and the largest deviation seen."""

    def __init__(self, rtol: float, atol: float):
        self.rtol, self.atol = rtol, atol
        self.errors: list[str] = []
        self.max_abs = 0.0
        self.n_values = 0
        self.bitwise = True

    def fail(self, where: str, msg: str) -> None:
        self.errors.append(f"{where}: {msg}")

    def arrays(self, where: str, a, b) -> None:
        import scipy.sparse as sp

        if sp.issparse(a) or sp.issparse(b):
            if not (sp.issparse(a) and sp.issparse(b)):
                return self.fail(where, f"sparse vs dense ({type(a).__name__} vs {type(b).__name__})")
            a, b = a.toarray(), b.toarray()
        a, b = np.asarray(a), np.asarray(b)
        if a.shape != b.shape:
            return self.fail(where, f"shape {a.shape} vs {b.shape}")
        if a.dtype != b.dtype:
            return self.fail(where, f"dtype {a.dtype} vs {b.dtype}")
        self.n_values += a.size
        if a.dtype.kind in "fc":
            nan_a, nan_b = np.isnan(a), np.isnan(b)
            if not np.array_equal(nan_a, nan_b):
                return self.fail(where, f"NaN at different places ({nan_a.sum()} vs {nan_b.sum()})")
            fa, fb = a[~nan_a], b[~nan_b]
            if np.array_equal(fa, fb):
                return
            self.bitwise = False
            d = np.abs(fa.astype(np.float64) - fb.astype(np.float64))
            self.max_abs = max(self.max_abs, float(d.max()))
            bad = d > self.atol + self.rtol * np.abs(fb.astype(np.float64))
            if bad.any():
                self.fail(where, f"{int(bad.sum())} of {fa.size} values differ, max |diff| {d.max():.3g}")
        elif a.dtype.kind == "O":
            if not all(values_equal(x, y) for x, y in zip(a.ravel(), b.ravel())):
                self.fail(where, "object values differ")
        elif not np.array_equal(a, b):
            self.fail(where, f"{int((a != b).sum())} of {a.size} values differ")

    def frames(self, where: str, a: pd.DataFrame, b: pd.DataFrame) -> None:
        if list(a.columns) != list(b.columns):
            return self.fail(where, f"columns {list(a.columns)} vs {list(b.columns)}")
        if not a.index.equals(b.index):
            return self.fail(where, "index differs")
        labels = [c for c in a.columns if a[c].dtype == object]
        if labels:
            def timing_rows(df):
                return df[labels].astype(str).apply(lambda col: col.str.contains(TIMING_ROW)).any(axis=1)

            ta, tb = timing_rows(a), timing_rows(b)
            if not ta.equals(tb):
                return self.fail(where, "timing rows differ")
            a, b = a[~ta.to_numpy()], b[~tb.to_numpy()]
        for col in a.columns:
            if TIMING.search(str(col)):
                continue
            x, y = a[col], b[col]
            if isinstance(x.dtype, pd.CategoricalDtype) or isinstance(y.dtype, pd.CategoricalDtype):
                if str(x.dtype) != str(y.dtype) or not x.astype(str).equals(y.astype(str)):
                    self.fail(f"{where}[{col}]", "categories or values differ")
                continue
            self.arrays(f"{where}[{col}]", x.to_numpy(), y.to_numpy())

    def tree(self, where: str, a, b) -> None:
        """Recursive comparison of nested dicts / lists / arrays / scalars."""
        try:
            import torch
        except ImportError:  # pragma: no cover
            torch = None
        if torch is not None and isinstance(a, torch.Tensor):
            if not isinstance(b, torch.Tensor):
                return self.fail(where, "tensor vs non-tensor")
            return self.arrays(where, a.detach().cpu().numpy(), b.detach().cpu().numpy())
        if isinstance(a, pd.DataFrame):
            return self.frames(where, a, b) if isinstance(b, pd.DataFrame) else self.fail(where, "type")
        if isinstance(a, Mapping):
            if not isinstance(b, Mapping):
                return self.fail(where, f"mapping vs {type(b).__name__}")
            ka, kb = set(a), set(b)
            if ka != kb:
                return self.fail(where, f"keys differ: only A {sorted(map(str, ka - kb))}, "
                                        f"only B {sorted(map(str, kb - ka))}")
            for k in a:
                if TIMING.search(str(k)):
                    continue
                self.tree(f"{where}/{k}", a[k], b[k])
            return
        if isinstance(a, (list, tuple)) and not _is_numeric_list(a):
            if not isinstance(b, (list, tuple)) or len(a) != len(b):
                return self.fail(where, "lists of different length or type")
            for i, (x, y) in enumerate(zip(a, b)):
                self.tree(f"{where}[{i}]", x, y)
            return
        if isinstance(a, (np.ndarray, list, tuple)) or _is_sparse(a):
            return self.arrays(where, a, b)
        if isinstance(a, (float, np.floating, int, np.integer)) and not isinstance(a, bool):
            if not isinstance(b, (float, np.floating, int, np.integer)) or isinstance(b, bool):
                return self.fail(where, f"{a!r} vs {b!r}")
            return self.arrays(where, np.asarray([a]), np.asarray([b]))
        if not values_equal(a, b):
            self.fail(where, f"{a!r} vs {b!r}")


def _is_sparse(x) -> bool:
    import scipy.sparse as sp

    return sp.issparse(x)


def _is_numeric_list(x) -> bool:
    return len(x) > 0 and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in x)


def values_equal(x, y) -> bool:
    if isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y):
        return True
    try:
        return bool(x == y)
    except Exception:  # noqa: BLE001 - odd types: compare their text
        return repr(x) == repr(y)


def compare_h5ad(d: Diff, where: str, pa: Path, pb: Path) -> None:
    import anndata as ad

    a, b = ad.read_h5ad(pa), ad.read_h5ad(pb)
    if a.shape != b.shape:
        return d.fail(where, f"shape {a.shape} vs {b.shape}")
    if not (a.obs_names.equals(b.obs_names) and a.var_names.equals(b.var_names)):
        return d.fail(where, "obs_names or var_names differ")
    if (a.X is None) != (b.X is None):
        return d.fail(where, "X present in one file only")
    if a.X is not None:
        d.arrays(f"{where}:X", a.X, b.X)
    for slot in ("layers", "obsm", "varm", "obsp", "varp"):
        sa, sb = getattr(a, slot), getattr(b, slot)
        if set(sa) != set(sb):
            d.fail(f"{where}:{slot}", f"keys {sorted(sa)} vs {sorted(sb)}")
            continue
        for k in sa:
            d.tree(f"{where}:{slot}[{k}]", sa[k], sb[k])
    d.frames(f"{where}:obs", a.obs, b.obs)
    d.frames(f"{where}:var", a.var, b.var)
    d.tree(f"{where}:uns", dict(a.uns), dict(b.uns))


def compare_table(d: Diff, where: str, pa: Path, pb: Path) -> None:
    sep = "\t" if pa.suffix == ".tsv" else ","
    d.frames(where, pd.read_csv(pa, sep=sep), pd.read_csv(pb, sep=sep))


def compare_json(d: Diff, where: str, pa: Path, pb: Path) -> None:
    d.tree(where, json.loads(pa.read_text()), json.loads(pb.read_text()))


def compare_torch(d: Diff, where: str, pa: Path, pb: Path) -> None:
    import torch

    d.tree(where, torch.load(pa, map_location="cpu", weights_only=True),
           torch.load(pb, map_location="cpu", weights_only=True))


COMPARERS = {".h5ad": compare_h5ad, ".tsv": compare_table, ".csv": compare_table,
             ".json": compare_json, ".pt": compare_torch}


def files(root: Path) -> set[str]:
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not (set(p.relative_to(root).parts[:-1]) & SKIP_DIRS)
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("a", type=Path)
    ap.add_argument("b", type=Path)
    ap.add_argument("--rtol", type=float, default=0.0)
    ap.add_argument("--atol", type=float, default=0.0)
    args = ap.parse_args(argv)
    fa, fb = files(args.a), files(args.b)
    ok = True
    if not fa:
        print(f"no files under {args.a}")
        return 1
    if fa != fb:
        ok = False
        print(f"DIFFERENT file sets: only in {args.a}: {sorted(fa - fb)}; "
              f"only in {args.b}: {sorted(fb - fa)}")
    n_compared = 0
    bitwise = True
    for rel in sorted(fa & fb):
        suffix = Path(rel).suffix
        if suffix in FIGURES:
            print(f"exists   {rel}")
            continue
        fn = COMPARERS.get(suffix)
        if fn is None:
            print(f"skipped  {rel} (no comparer for {suffix or 'this file'})")
            continue
        d = Diff(args.rtol, args.atol)
        try:
            fn(d, rel, args.a / rel, args.b / rel)
        except Exception as err:  # noqa: BLE001 - an unreadable file is a difference
            d.fail(rel, f"cannot compare: {type(err).__name__}: {err}")
        n_compared += 1
        bitwise &= d.bitwise and not d.errors
        if d.errors:
            ok = False
            print(f"DIFFERENT {rel}")
            for e in d.errors[:20]:
                print(f"    {e}")
        else:
            how = "bitwise" if d.bitwise else f"within tolerance, max |diff| {d.max_abs:.3g}"
            print(f"equal    {rel} ({d.n_values} values, {how})")
    verdict = ("all equal, bitwise" if ok and bitwise
               else "all equal within tolerance" if ok else "DIFFERENCES")
    print(f"{n_compared} files compared by value: {verdict}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
