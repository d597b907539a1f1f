"""Execute the tutorials (``docs/tutorials/*.ipynb``) once, for CI, the tests and the docs.

Each notebook is run top to bottom with :mod:`nbclient` in a kernel started from the
running interpreter (``sys.executable``), with a per-notebook timeout; any error fails the
run. The executed copy is written to ``docs/_build/executed/<name>.ipynb`` (the folder can
be changed with ``--out`` or ``BIOML_EXECUTED_DIR``); Sphinx renders these copies (see
``docs/conf.py``) and ``tests/test_tutorials.py`` reads them. A notebook whose executed
copy is newer than both the notebook and every file of the ``bioml`` package is skipped
unless ``--force`` is given, so that ``make docs`` after a CI step does not run it twice.

Usage::

    python docs/execute_tutorials.py                 # every tutorial that changed
    python docs/execute_tutorials.py --force 01      # only names containing "01", always
    python docs/execute_tutorials.py --timeout 300

The kernel runs with ``OMP_NUM_THREADS`` (and the MKL/OpenBLAS/numba equivalents) set to
``BIOML_TUTORIAL_THREADS`` (default 1).

Exit status 1 if any notebook fails (its partly executed copy is kept beside the others
as ``<name>.failed.ipynb`` for inspection); the timings go to stdout and to
``<out>/timings.tsv``.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
TUTORIALS = DOCS / "tutorials"
DEFAULT_OUT = Path(os.environ.get("BIOML_EXECUTED_DIR", DOCS / "_build" / "executed"))
KERNEL_NAME = "bioml-tutorials"


def _kernel_manager():
    """A kernel manager whose kernel is the running interpreter, whatever kernelspecs exist."""
    from jupyter_client.manager import KernelManager

    km = KernelManager(kernel_name="python3")
    # do not depend on a registered "python3" kernelspec pointing at the right environment:
    # start ipykernel with this very interpreter
    km.kernel_cmd = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
    return km


def _kernel_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.setdefault("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    if env["MPLBACKEND"] == "Agg":  # CI exports Agg for scripts; notebooks need the inline backend
        env["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
    env["PYTHONUNBUFFERED"] = "1"
    # the tutorials' models are small: one thread each for torch and BLAS is as fast and
    # does not collapse when the cores are shared (BIOML_TUTORIAL_THREADS to change it)
    threads = os.environ.get("BIOML_TUTORIAL_THREADS", "1")
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "NUMBA_NUM_THREADS"):
        env[var] = threads
    return env


def _newest_source_mtime() -> float:
    return max(p.stat().st_mtime for p in (ROOT / "bioml").rglob("*.py"))


def execute(path: Path, out_dir: Path, *, timeout: int) -> tuple[bool, float, str]:
    """Run one notebook; write the executed copy; return (ok, seconds, error text)."""
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    nb = nbformat.read(path, as_version=4)
    km = _kernel_manager()
    client = NotebookClient(
        nb,
        km=km,
        timeout=timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
        allow_errors=False,
        record_timing=True,
    )
    env = _kernel_env()
    t0 = time.perf_counter()
    error = ""
    deadline_hit = False
    try:
        # nbclient's per-cell timeout, plus a whole-notebook budget checked between cells
        with client.setup_kernel(env=env, cwd=str(path.parent)):
            for index, cell in enumerate(nb.cells):
                if time.perf_counter() - t0 > timeout:
                    deadline_hit = True
                    error = f"notebook timeout: {timeout} s exceeded before cell {index}"
                    break
                client.execute_cell(cell, index)
    except (CellExecutionError, CellTimeoutError, DeadKernelError) as exc:
        error = str(exc)
    seconds = time.perf_counter() - t0
    ok = not error and not deadline_hit
    out_dir.mkdir(parents=True, exist_ok=True)
    target = out_dir / (path.name if ok else path.stem + ".failed.ipynb")
    nb.metadata.setdefault("bioml", {})["execution_seconds"] = round(seconds, 2)
    tmp = target.with_suffix(".tmp")
    nbformat.write(nb, tmp)
    os.replace(tmp, target)
    if not ok:
        stale = out_dir / path.name
        stale.unlink(missing_ok=True)  # never let an old successful copy pass for this run
    return ok, seconds, error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="run only notebooks whose file name contains one of these")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder of the executed copies")
    parser.add_argument("--timeout", type=int, default=int(os.environ.get("BIOML_TUTORIAL_TIMEOUT", 600)),
                        help="seconds per notebook (default 600; the target is under 180 on 2 cores)")
    parser.add_argument("--force", action="store_true",
                        help="execute even when the executed copy is up to date")
    args = parser.parse_args(argv)

    notebooks = sorted(TUTORIALS.glob("*.ipynb"))
    if args.names:
        notebooks = [p for p in notebooks if any(n in p.name for n in args.names)]
    if not notebooks:
        print(f"no tutorials found in {TUTORIALS}", file=sys.stderr)
        return 1
    src_mtime = _newest_source_mtime()
    failed = []
    rows = []
    for path in notebooks:
        done = args.out / path.name
        if (not args.force and done.is_file()
                and done.stat().st_mtime >= max(path.stat().st_mtime, src_mtime)):
            print(f"{path.name}: up to date ({done})")
            continue
        print(f"{path.name}: executing (timeout {args.timeout} s) ...", flush=True)
        ok, seconds, error = execute(path, args.out, timeout=args.timeout)
        rows.append((path.name, "ok" if ok else "FAILED", f"{seconds:.1f}"))
        print(f"{path.name}: {'ok' if ok else 'FAILED'} in {seconds:.1f} s", flush=True)
        if not ok:
            failed.append(path.name)
            print(error, file=sys.stderr)
    if rows:
        args.out.mkdir(parents=True, exist_ok=True)
        with open(args.out / "timings.tsv", "a", encoding="utf-8") as fh:
            for row in rows:
                fh.write("\t".join(row) + "\n")
    if failed:
        print(f"{len(failed)} tutorial(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
