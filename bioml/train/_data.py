"""The engine's data path: device-resident tensors, permutation slicing, streaming chunks.

Rules (documented here, used by :class:`~bioml.train.Trainer`):

*Resident path.* When the dense data fits ``max_device_bytes`` it is ONE tensor per key
on the training device (moved once). Each epoch the engine draws an order of the training
rows (a permutation from the trainer's own seeded :class:`torch.Generator`, or weighted
draws with replacement for class-balanced sampling), cuts it into index blocks and gives
the model ``X.index_select(0, block)`` per minibatch: one gather per step, no per-sample
Python indexing, no collate, no DataLoader.

*Streaming path.* When it does not fit, the data stays in host memory and the same
index blocks are grouped into chunks of whole minibatches (about half the budget each);
a chunk is gathered on the host with one ``index_select`` (into a pinned buffer and
copied with ``non_blocking=True`` when CUDA is available; two buffers alternate, guarded
by CUDA events) and the minibatches are contiguous slices of the chunk on the device. The
rows and their order are the same as on the resident path, so on the CPU both paths give
bitwise-identical training.

*Sparse* ``X`` (scipy) stays sparse on the host and each minibatch's rows are densified
(``X[rows].toarray()``) just before they are moved; nothing else is densified.

*Last minibatch.* The blocks have ``batch_size`` rows; when the last one would have fewer
than ``min_batch_size`` rows (default 2, since BatchNorm cannot train on one row) it is
merged into the previous block, which then has up to ``batch_size + min_batch_size - 1``
rows. No row is dropped. A training set smaller than ``min_batch_size`` is an error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch
from scipy import sparse

from ..errors import ConfigError, InputError

__all__ = ["batch_bounds", "DataPath", "balanced_order"]


def batch_bounds(n: int, batch_size: int, min_batch_size: int = 2) -> list[tuple[int, int]]:
    """Minibatch ``(start, stop)`` bounds over ``n`` ordered rows (merge rule above).

    Parameters
    ----------
    n
        Number of rows.
    batch_size
        Rows per minibatch.
    min_batch_size
        A last minibatch smaller than this is merged into the one before (BatchNorm
        needs at least 2 rows).

    Returns
    -------
    list of (int, int)
        ``(start, stop)`` of each minibatch.

    Raises
    ------
    ConfigError
        ``batch_size < 1`` or fewer than ``min_batch_size`` rows.

    Examples
    --------
    >>> from bioml.train import batch_bounds
    >>> batch_bounds(9, 4)
    [(0, 4), (4, 9)]
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if n < max(min_batch_size, 1):
        raise ConfigError(
            f"only {n} training rows; at least min_batch_size={min_batch_size} are needed"
        )
    bounds = [(s, min(s + batch_size, n)) for s in range(0, n, batch_size)]
    if len(bounds) > 1 and bounds[-1][1] - bounds[-1][0] < min_batch_size:
        last = bounds.pop()
        bounds[-1] = (bounds[-1][0], last[1])
    return bounds


def balanced_order(
    codes: torch.Tensor, generator: torch.Generator
) -> tuple[torch.Tensor, float]:
    """Class-balanced draws with replacement and the minority repeat rate.

    Each of the ``n`` positions draws a row with probability proportional to ``1 /
    count(class of row)``, so every class is expected to fill ``n / K`` positions.

    *Repeat rate*: the minority classes are those with fewer than ``n / K`` rows (they
    are up-sampled); the rate is the number of draws of minority rows divided by the
    number of distinct minority rows drawn (1.0: no row repeated; 3.0: each drawn
    minority row was seen three times on average in the epoch). NaN when no class is a
    minority.

    Parameters
    ----------
    codes
        Integer class codes ``0..K-1`` of the ``n`` training rows (CPU tensor).
    generator
        The trainer's data generator.

    Returns
    -------
    (order, repeat_rate)
        Row positions (CPU int64 tensor of length ``n``) and the repeat rate.
    """
    n = codes.numel()
    counts = torch.bincount(codes)
    k = int((counts > 0).sum())
    weights = (1.0 / counts.double())[codes]
    order = torch.multinomial(weights, n, replacement=True, generator=generator)
    minority_class = (counts > 0) & (counts.double() < n / max(k, 1))
    draws = torch.bincount(order, minlength=n)
    is_min = minority_class[codes]
    drawn_min = draws[is_min]
    distinct = int((drawn_min > 0).sum())
    rate = float(drawn_min.sum()) / distinct if distinct else float("nan")
    return order, rate


class DataPath:
    """Holds the training arrays and yields minibatch dicts (see the module docstring).

    Parameters
    ----------
    data
        ``{name: array}`` with the same number of rows; ``"X"`` is required. Dense arrays
        (numpy or torch) are used as they are (``X`` as float32); ``X`` may be scipy
        sparse.
    device
        Training device.
    max_device_bytes
        Budget for the resident copy; ``None``: 50% of the free memory on CUDA,
        unlimited on the CPU.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        device: torch.device,
        *,
        max_device_bytes: int | None = None,
    ):
        if "X" not in data:
            raise InputError("training data needs an 'X' entry")
        self.device = device
        self.cuda = device.type == "cuda" and torch.cuda.is_available()
        self.sparse_X = None
        host: dict[str, torch.Tensor] = {}
        n = None
        for key, value in data.items():
            if key == "X" and sparse.issparse(value):
                self.sparse_X = sparse.csr_matrix(value, dtype=np.float32)
                rows = value.shape[0]
            else:
                t = value if isinstance(value, torch.Tensor) else \
                    torch.from_numpy(np.ascontiguousarray(value))
                if key == "X":
                    t = t.to(torch.float32)
                host[key] = t.contiguous()
                rows = t.shape[0]
            if n is None:
                n = rows
            elif rows != n:
                raise InputError(f"training data '{key}' has {rows} rows, 'X' has {n}")
        self.n = int(n)
        self.host = host
        nbytes = sum(t.element_size() * t.numel() for t in host.values())
        row_bytes = max(1, nbytes // max(self.n, 1))
        if self.sparse_X is not None:
            row_bytes += 4 * self.sparse_X.shape[1]
        if max_device_bytes is None:
            if self.cuda:
                free, _ = torch.cuda.mem_get_info(device)
                max_device_bytes = int(0.5 * free)
            else:
                max_device_bytes = 1 << 62
        self.max_device_bytes = int(max_device_bytes)
        self.row_bytes = row_bytes
        self.resident = self.sparse_X is None and nbytes <= self.max_device_bytes
        if self.resident:
            self.tensors = {k: t.to(device) for k, t in host.items()}
        else:  # the source stays where it is: chunks are gathered into pinned buffers
            self.tensors = {}
        self.chunk_rows = max(1, self.max_device_bytes // (2 * row_bytes))
        self._buffers: list[dict[str, torch.Tensor] | None] = [None, None]
        self._events: list[Any] = [None, None]
        self._which = 0

    @property
    def mode(self) -> str:
        """``"resident"``, ``"streaming"`` or ``"sparse"`` (per-minibatch densifying)."""
        if self.sparse_X is not None:
            return "sparse"
        return "resident" if self.resident else "streaming"

    # -- minibatches ---------------------------------------------------------------------
    def iterate(
        self, order: torch.Tensor, bounds: list[tuple[int, int]]
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Yield one dict per block ``order[start:stop]`` (``order``: CPU int64 row ids)."""
        if self.sparse_X is not None:
            yield from self._iterate_sparse(order, bounds)
        elif self.resident:
            idx = order.to(self.device, non_blocking=self.cuda)
            for start, stop in bounds:
                block = idx[start:stop]
                yield {k: t.index_select(0, block) for k, t in self.tensors.items()}
        else:
            yield from self._iterate_stream(order, bounds)

    def _iterate_sparse(self, order, bounds):
        order_np = order.numpy()
        for start, stop in bounds:
            rows = order_np[start:stop]
            x = torch.from_numpy(self.sparse_X[rows].toarray())
            out = {"X": x.to(self.device, non_blocking=False)}
            block = order[start:stop]
            for k, t in self.host.items():
                out[k] = t.index_select(0, block).to(self.device)
            yield out

    def _chunks(self, bounds):
        chunk: list[tuple[int, int]] = []
        for b in bounds:
            if chunk and b[1] - chunk[0][0] > self.chunk_rows:
                yield chunk
                chunk = []
            chunk.append(b)
        if chunk:
            yield chunk

    def _gather(self, block: torch.Tensor) -> dict[str, torch.Tensor]:
        if not self.cuda:
            return {k: t.index_select(0, block) for k, t in self.host.items()}
        m = block.numel()
        i = self._which
        self._which ^= 1
        if self._events[i] is not None:
            self._events[i].synchronize()  # the previous copy out of this buffer is done
        buf = self._buffers[i]
        if buf is None or next(iter(buf.values())).shape[0] < m:
            size = max(m, min(self.chunk_rows, self.n))
            buf = {
                k: torch.empty((size, *t.shape[1:]), dtype=t.dtype).pin_memory()
                for k, t in self.host.items()
            }
            self._buffers[i] = buf
        out = {}
        for k, t in self.host.items():
            torch.index_select(t, 0, block, out=buf[k][:m])
            out[k] = buf[k][:m].to(self.device, non_blocking=True)
        ev = torch.cuda.Event()
        ev.record()
        self._events[i] = ev
        return out

    def _iterate_stream(self, order, bounds):
        for chunk in self._chunks(bounds):
            c0, c1 = chunk[0][0], chunk[-1][1]
            dev = self._gather(order[c0:c1])
            for start, stop in chunk:
                yield {k: t[start - c0 : stop - c0] for k, t in dev.items()}
