"""The one helper every rule script uses (thin scripts; logic lives in bioml).

``run_rule(snakemake, main)``:
- sends logging, warnings and stderr to ``snakemake.log[0]``;
- limits BLAS/OpenMP/torch threads to ``snakemake.threads``;
- turns a :class:`bioml.errors.BiomlError` into one clear line (in the log and on the
  console) and exit status 1, removing any output the job had already written, so a
  failed rule leaves nothing behind. Any other exception is a bug: its traceback is logged.
"""

from __future__ import annotations

import logging
import os
import sys
import traceback
from pathlib import Path


def _limit_threads(n: int) -> None:
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "NUMEXPR_NUM_THREADS"):
        os.environ[var] = str(n)
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(n)
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        pass
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(n)


def _remove_outputs(snakemake) -> None:
    for out in snakemake.output:
        p = Path(out)
        if p.is_file() or p.is_symlink():
            p.unlink()


def run_rule(snakemake, main) -> None:
    """Run ``main(snakemake)`` as a rule body; see the module docstring."""
    log_path = Path(snakemake.log[0])
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console = sys.__stderr__
    handle = open(log_path, "w", buffering=1)
    sys.stderr = handle
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[logging.StreamHandler(handle)],
        force=True,
    )
    logging.captureWarnings(True)
    _limit_threads(max(1, int(snakemake.threads)))
    log = logging.getLogger(f"bioml.rule.{snakemake.rule}")
    log.info("rule %s: threads=%s", snakemake.rule, snakemake.threads)
    from bioml.errors import BiomlError

    try:
        main(snakemake)
    except BiomlError as err:
        _remove_outputs(snakemake)
        line = f"bioml: rule {snakemake.rule} failed: {type(err).__name__}: {err}"
        log.error(line)
        print(line, file=console)
        handle.close()
        sys.exit(1)
    except Exception:
        _remove_outputs(snakemake)
        log.error("unexpected error (a bug; please report it):\n%s", traceback.format_exc())
        print(f"bioml: rule {snakemake.rule} crashed; see {log_path}", file=console)
        handle.close()
        sys.exit(1)
    log.info("rule %s: done", snakemake.rule)
    handle.close()
