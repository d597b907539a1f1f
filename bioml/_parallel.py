"""Thread helpers shared by the vectorised passes over large matrices (ComBat, linear removal).

numpy releases the GIL in its loops, so row or gene blocks can be processed on a thread
pool; BLAS is held to one thread meanwhile, because idle OpenBLAS threads spin after each
call and take the cores the pool needs (measured on 2-core machines).
"""

from __future__ import annotations

import contextlib
import functools
import os
from concurrent.futures import ThreadPoolExecutor

__all__ = ["n_threads", "threaded", "blas_single_thread"]


def n_threads() -> int:
    """Cores available to this process (its affinity, as SLURM sets it), at most 8."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


@functools.cache
def _blas_controller():
    """One threadpoolctl controller per process (finding the libraries costs ~10 ms)."""
    try:
        from threadpoolctl import ThreadpoolController
    except ImportError:  # pragma: no cover - threadpoolctl comes with scikit-learn
        return None
    return ThreadpoolController()


def blas_single_thread():
    """A context manager holding BLAS to one thread."""
    controller = _blas_controller()
    return controller.limit(limits=1, user_api="blas") if controller else contextlib.nullcontext()


@functools.cache
def _pool(threads: int) -> ThreadPoolExecutor:
    """One pool per size, kept for the process (starting threads costs ~10 ms a call)."""
    return ThreadPoolExecutor(threads, thread_name_prefix="bioml")


def threaded(fn, items, threads: int | None = None) -> list:
    """``[fn(x) for x in items]`` on ``threads`` threads (default :func:`n_threads`), BLAS single-threaded."""
    threads = n_threads() if threads is None else threads
    if threads <= 1 or len(items) <= 1:
        return [fn(x) for x in items]
    with blas_single_thread():
        return list(_pool(threads).map(fn, items))
