"""Autoencoder training throughput: this engine vs a DataLoader, against the matmul ceiling.

Prints one table, all rows measured in the same run on the same matrix (decision 18):

- cells/s per epoch of the default autoencoder (2000-512-128-32, BatchNorm, dropout 0.1,
  Adam) trained through ``bioml.train.Trainer`` (device-resident data, permutation slicing);
- the same model fed by ``torch.utils.data.DataLoader(TensorDataset(X), shuffle=True)``;
- an SCVI-sized autoencoder (one hidden layer of 128, latent 10) through the engine, at
  ``--batch-size`` and at ``--large-batch`` (SCVI itself trains at its default, 128);
- optionally scvi-tools' SCVI with its defaults (``--scvi-python`` pointing at a separate
  environment's python that has scvi-tools; it is not a dependency of bioml), timed in
  ``--rounds`` rounds alternating with the SCVI-sized AE at ``--batch-size`` (the engine
  runs before and after each SCVI run; the ratio is the median of the rounds' ratios, so
  that the shared machine's slow and fast spells fall on both; each round is printed with
  a 4096 x 4096 matmul's GFLOP/s at its start, the machine's state), also at the large
  batch, and once more with glibc's malloc thresholds set as the engine sets them for
  CPU training (``bioml.train.tune_cpu_allocator``; process-wide, so the DataLoader row
  has them too), to separate the engine's gain from the allocator's;
- the model's training FLOPs per cell (3x the forward Linear FLOPs) and the achieved
  FLOP/s beside ``torch.matmul`` at the model's own layer shapes and batch size (forward,
  grad-input and grad-weight products) and a 4096 x 4096 product;
- the data path's share of the epoch (time to gather minibatches, timed separately; on a
  GPU by ablation, see :func:`engine_run`).

Usage::

    python benchmarks/bench_autoencoder.py                       # 20000 x 2000
    python benchmarks/bench_autoencoder.py --n-obs 5000 --epochs 2
    python benchmarks/bench_autoencoder.py --device cuda          # on a GPU (bf16 autocast)
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bioml.nn import Autoencoder  # noqa: E402
from bioml.tl._autoencoder import _AutoencoderPlan  # noqa: E402
from bioml.train import StepContext, Trainer, make_optimizer, resolve_device, tune_cpu_allocator  # noqa: E402
from bioml.train._alloc import MMAP_THRESHOLD, TRIM_THRESHOLD  # noqa: E402
from bioml.train._data import DataPath  # noqa: E402


def plan(module):
    """The training plan ``bm.tl.autoencoder`` uses (Adam, lr 1e-3, constant schedule)."""
    return _AutoencoderPlan(module, {"name": "adam", "lr": 1e-3}, {"name": "constant"})


def engine_run(X, hidden, latent, args, device):
    """Cells/s and the data path's share of epoch time.

    On the CPU both come from one run (``Trainer(profile=True)`` times each step's data
    fetch; CPU work is synchronous). On a GPU, synchronising around each fetch stops the
    host from queueing work ahead of the device and slows the step itself, so cells/s come
    from a run without it (as training runs by default), and the share from an ablation:
    the same run with the gathers replaced by sequential views of the resident matrix
    (no data work at all), ``1 - t_views / t`` in three alternating pairs of runs (median;
    negative values are noise). The share timed with synchronisation is noted beside it."""

    def run(profile):
        module = Autoencoder(X.shape[1], hidden=hidden, latent=latent, dropout=0.1)
        tr = Trainer(epochs=args.epochs, batch_size=args.batch_size, device=device, progress=False,
                     profile=profile, seed=0, precision=args.precision)
        h = tr.fit(plan(module), {"X": X})
        h = h.iloc[1:] if len(h) > 1 else h  # first epoch warms up
        return h, module, tr

    h, module, tr = run(True)
    share = float((h["data_seconds"] / h["seconds"]).median())
    note = f"{tr.data_mode}, malloc {tr.allocator or 'as is'}"
    secs = float(h["seconds"].median())
    if device.type == "cuda":  # alternating pairs (with gathers, with views): median ratio
        pairs = []
        for _ in range(3):
            h, module, tr = run(False)
            with _views_data_path():
                h_views, _, _ = run(False)
            pairs.append((float(h["seconds"].median()), float(h_views["seconds"].median())))
        secs = float(np.median([t for t, _ in pairs]))
        note += ("; share by ablation, median of 3 pairs: "
                 + ", ".join(f"{100 * (1 - v / t):.1f}%" for t, v in pairs)
                 + f" ({100 * share:.1f}% timed with syncs)")
        share = max(0.0, float(np.median([1 - v / t for t, v in pairs])))
    return X.shape[0] / secs, share, module, note


@contextlib.contextmanager
def _views_data_path():
    """The engine's resident data path with each minibatch a view of the next rows in
    order instead of a gather of shuffled rows (an ablation: no data work per step)."""
    orig = DataPath.iterate

    def views(self, order, bounds):
        if not self.resident:
            yield from orig(self, order, bounds)
            return
        for start, stop in bounds:
            yield {k: t[start:stop] for k, t in self.tensors.items()}

    DataPath.iterate = views
    try:
        yield
    finally:
        DataPath.iterate = orig


def dataloader_run(X, hidden, latent, args, device):
    """The same model and step fed by a DataLoader; on a GPU timed as :func:`engine_run`
    (the share from a run synchronised around each fetch, cells/s from one without)."""
    if device.type != "cuda":
        return _dataloader_run(X, hidden, latent, args, device, sync=False)
    _, share = _dataloader_run(X, hidden, latent, args, device, sync=True)
    cps, _ = _dataloader_run(X, hidden, latent, args, device, sync=False)
    return cps, share


def _dataloader_run(X, hidden, latent, args, device, sync):
    torch.manual_seed(0)
    module = Autoencoder(X.shape[1], hidden=hidden, latent=latent, dropout=0.1).to(device)
    opt = make_optimizer(module.parameters(), "adam", lr=1e-3)
    ctx = StepContext(optimizers={"main": opt}, schedulers={}, device=device, n_epochs=args.epochs)
    steps = plan(module)  # the engine's training step; only the data path differs
    ds = torch.utils.data.TensorDataset(torch.from_numpy(X))
    dl = torch.utils.data.DataLoader(ds, batch_size=args.batch_size, shuffle=True, drop_last=True)
    times, shares = [], []
    cuda = device.type == "cuda"
    for _ in range(args.epochs):
        t0 = time.perf_counter()
        data_t = 0.0
        it = iter(dl)
        ctx.step = 0
        while True:
            td = time.perf_counter()
            try:
                (xb,) = next(it)
            except StopIteration:
                break
            xb = xb.to(device, non_blocking=False)
            if sync:
                torch.cuda.synchronize()
            data_t += time.perf_counter() - td
            with (torch.autocast("cuda", dtype=torch.bfloat16) if cuda and args.precision != "32"
                  else torch.autocast("cpu", enabled=False)):
                steps.training_step({"X": xb}, ctx)
            ctx.step += 1
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        shares.append(data_t / times[-1])
    times, shares = (times[1:], shares[1:]) if len(times) > 1 else (times, shares)
    return X.shape[0] / float(np.median(times)), float(np.median(shares))


def _time(fn, reps, device):
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        ts.append(time.perf_counter() - t0)
    return float(np.median(ts))


def matmul_ceiling(module, batch, device, dtype, reps=10):
    """FLOP/s of the training-step matmuls of the module's Linear layers at this batch size."""
    flops, secs = 0, 0.0
    for lin in [m for m in module.modules() if isinstance(m, torch.nn.Linear)]:
        i, o = lin.in_features, lin.out_features
        x = torch.randn(batch, i, device=device, dtype=dtype)
        w = torch.randn(i, o, device=device, dtype=dtype)
        g = torch.randn(batch, o, device=device, dtype=dtype)

        def step():
            torch.matmul(x, w)  # forward
            torch.matmul(g, w.t())  # grad input
            torch.matmul(x.t(), g)  # grad weight

        secs += _time(step, reps, device)
        flops += 3 * 2 * batch * i * o
    return flops / secs


def big_matmul(device, dtype, n=4096, reps=5):
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / _time(lambda: torch.matmul(a, b), reps, device)


def scvi_run(X, args, batch_size=128, tuned_malloc=False):
    """SCVI with defaults (batch size 128 unless given), in another python (a throwaway
    venv with scvi-tools); ``tuned_malloc``: with glibc's malloc thresholds set (through
    its environment variables) as the engine's ``tune_cpu_allocator`` sets them.

    Timed per epoch by a Lightning callback and summarised as the engine rows are (first
    epoch dropped, median of the rest), so SCVI's set-up and warm-up do not count."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.npy"
        np.save(path, np.round(np.expm1(X)).astype(np.float32))  # SCVI wants counts
        code = f"""
import time, numpy as np, anndata as ad, scvi, torch, json
from lightning.pytorch import Callback
torch.set_num_threads({torch.get_num_threads()})

class EpochTimer(Callback):
    def __init__(self):
        self.seconds = []
    def on_train_epoch_start(self, trainer, module):
        self.t0 = time.perf_counter()
    def on_train_epoch_end(self, trainer, module):
        self.seconds.append(time.perf_counter() - self.t0)

a = ad.AnnData(np.load({str(path)!r}))
scvi.model.SCVI.setup_anndata(a)
m = scvi.model.SCVI(a)
timer = EpochTimer()
m.train(max_epochs={args.epochs}, accelerator={'"gpu"' if args.device.startswith('cuda') else '"cpu"'},
        enable_progress_bar=False, train_size=1.0, early_stopping=False, batch_size={batch_size},
        callbacks=[timer])
print(json.dumps({{"seconds": timer.seconds}}))
"""
        env = dict(os.environ)
        if tuned_malloc:
            env.update(MALLOC_MMAP_THRESHOLD_=str(MMAP_THRESHOLD), MALLOC_TRIM_THRESHOLD_=str(TRIM_THRESHOLD))
        res = subprocess.run([args.scvi_python, "-c", code], capture_output=True, text=True, env=env)
        if res.returncode != 0:
            print(f"scvi-tools run failed:\n{res.stderr[-2000:]}", file=sys.stderr)
            return None
        secs = json.loads(res.stdout.strip().splitlines()[-1])["seconds"]
        secs = secs[1:] if len(secs) > 1 else secs
        return X.shape[0] / float(np.median(secs))


def _rounds_note(values):
    """``"; median of N rounds: a, b, c"`` for several rounds, else nothing."""
    return f"; median of {len(values)} rounds: " + ", ".join(f"{v:.0f}" for v in values) \
        if len(values) > 1 else ""


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--n-obs", type=int, default=20000)
    p.add_argument("--n-vars", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=None,
                   help="epochs per row (the first is discarded; median of the rest); default 5 on "
                        "the CPU, 20 on a GPU (where an epoch takes tens of milliseconds)")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--large-batch", type=int, default=1024,
                   help="also time the SCVI-sized AE at this batch size (0: skip)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", default="auto", choices=["auto", "bf16", "32"])
    p.add_argument("--scvi-python", default=None, help="python of an env with scvi-tools (optional)")
    p.add_argument("--rounds", type=int, default=3,
                   help="with --scvi-python: alternating rounds of the SCVI-sized AE and SCVI "
                        "(the 10x target is the median of the rounds' ratios)")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    if args.epochs is None:
        args.epochs = 20 if device.type == "cuda" else 5
    rng = np.random.default_rng(0)
    X = np.log1p(rng.gamma(0.5, 2.0, size=(args.n_obs, args.n_vars))).astype(np.float32)
    print(f"# {args.n_obs} x {args.n_vars} float32, batch {args.batch_size}, device {device}, "
          f"torch {torch.__version__}, threads {torch.get_num_threads()}, epochs {args.epochs}")

    # warm-up (the first minutes of a process pay for fresh memory pages and kernel
    # selection; without it whichever row runs first looks slower)
    warm = argparse.Namespace(**{**vars(args), "epochs": 2})
    engine_run(X[: min(len(X), 8192)], (512, 128), 32, warm, device)
    dataloader_run(X[: min(len(X), 8192)], (512, 128), 32, warm, device)
    rows = []
    cps, share, module, mode = engine_run(X, (512, 128), 32, args, device)
    alloc = tune_cpu_allocator() if device.type == "cpu" else None  # as the engine left it
    rows.append(("bioml engine, AE 2000-512-128-32", cps, share, f"data path: {mode}"))
    dl_cps, dl_share = dataloader_run(X, (512, 128), 32, args, device)
    rows.append(("DataLoader(TensorDataset), same AE", dl_cps, dl_share, "shuffle=True"))
    # the 10x target: the SCVI-sized AE and SCVI in alternating rounds, so that a slow or a
    # fast spell of a shared machine falls on both; each round's ratio, then their median.
    # Within a round the engine runs before and after SCVI (time-averaged), so that a
    # spell changing during the round does not fall on one side only; the round also
    # times a 4096 x 4096 matmul, to show the state of the machine beside its ratio.
    rounds, states = [], []
    for _ in range(max(1, args.rounds) if args.scvi_python else 1):
        if args.scvi_python:
            states.append(big_matmul(device, torch.float32, reps=3))
        e_cps, e_share, s_module, _ = engine_run(X, (128,), 10, args, device)
        sc = scvi_run(X, args) if args.scvi_python else None
        if sc:
            e2_cps, e2_share, _, _ = engine_run(X, (128,), 10, args, device)
            e_cps = 2.0 / (1.0 / e_cps + 1.0 / e2_cps)  # cells over the two runs' time
            e_share = (e_share + e2_share) / 2
        rounds.append((e_cps, e_share, sc))
    s_cps = float(np.median([r[0] for r in rounds]))
    s_share = float(np.median([r[1] for r in rounds]))
    rows.append(("bioml engine, SCVI-sized AE 2000-128-10", s_cps, s_share,
                 f"batch {args.batch_size}" + _rounds_note([r[0] for r in rounds])))
    if args.large_batch:
        big_args = argparse.Namespace(**{**vars(args), "batch_size": args.large_batch})
        l_cps, l_share, _, _ = engine_run(X, (128,), 10, big_args, device)
        rows.append(("bioml engine, SCVI-sized AE 2000-128-10", l_cps, l_share, f"batch {args.large_batch}"))
    scvi_rounds = [r[2] for r in rounds if r[2]]
    scvi_cps = float(np.median(scvi_rounds)) if scvi_rounds else None
    ratios = [r[0] / r[2] for r in rounds if r[2]]
    note = "not run here; issue's figure ~700 cells/s"
    if scvi_rounds:
        note = "measured, batch 128" + _rounds_note(scvi_rounds)
    rows.append(("scvi-tools SCVI (defaults)", scvi_cps, None, note))
    scvi_big = scvi_run(X, args, args.large_batch) if (args.scvi_python and args.large_batch) else None
    if scvi_big:
        rows.append(("scvi-tools SCVI (defaults)", scvi_big, None, f"measured, batch {args.large_batch}"))
    scvi_tuned = scvi_run(X, args, tuned_malloc=True) if (args.scvi_python and alloc == "tuned") else None
    if scvi_tuned:
        rows.append(("scvi-tools SCVI (defaults)", scvi_tuned, None,
                     "batch 128, engine's malloc thresholds"))

    print(f"\n{'row':44s} {'cells/s':>10s} {'data share':>10s}  note")
    for name, c, s, note in rows:
        cs = f"{c:10.0f}" if c else f"{'-':>10s}"
        ss = f"{100 * s:9.2f}%" if s is not None else f"{'-':>10s}"
        print(f"{name:44s} {cs} {ss}  {note}")

    dtype = torch.bfloat16 if (device.type == "cuda" and args.precision != "32") else torch.float32
    f_cell = 3 * module.flops_per_sample()
    f_scvi = 3 * s_module.flops_per_sample()
    ceil = matmul_ceiling(module, args.batch_size, device, dtype)
    ceil_s = matmul_ceiling(s_module, args.batch_size, device, dtype)
    big = big_matmul(device, dtype)
    if states and all(r[2] for r in rounds):
        print("\nrounds of the 10x target (engine before and after SCVI; the machine's state as a "
              "4096 x 4096 float32 matmul at the round's start)")
        print(f"{'round':>5s} {'engine cells/s':>15s} {'SCVI cells/s':>13s} {'ratio':>6s} "
              f"{'matmul GF/s':>12s}")
        for i, ((e, _, sc), gf) in enumerate(zip(rounds, states), 1):
            print(f"{i:5d} {e:15.0f} {sc:13.0f} {e / sc:6.1f} {gf / 1e9:12.1f}")

    print(f"\n{'model':28s} {'train FLOP/cell':>15s} {'achieved':>12s} {'matmul@shapes':>14s} "
          f"{'% of ceiling':>12s}")
    for name, f, c, ce in [("default AE", f_cell, cps, ceil), ("SCVI-sized AE", f_scvi, s_cps, ceil_s)]:
        print(f"{name:28s} {f / 1e6:12.2f} M {f * c / 1e9:9.2f} GF/s {ce / 1e9:9.2f} GF/s "
              f"{100 * f * c / ce:11.1f}%")
    print(f"torch.matmul 4096x4096 ({str(dtype).replace('torch.', '')}): {big / 1e9:.2f} GFLOP/s")
    ratio = f" = {s_cps / 700:.1f}x SCVI's ~700 cells/s (issue figure)" if not scvi_cps else \
        f" = {float(np.median(ratios)):.1f}x SCVI measured" + (
            " (median of the rounds' ratios " + ", ".join(f"{q:.1f}" for q in ratios) + ")"
            if len(ratios) > 1 else "")
    if scvi_cps and args.large_batch:
        ratio += f" ({l_cps / scvi_cps:.1f}x with the engine at batch {args.large_batch}"
        ratio += f"; {l_cps / scvi_big:.1f}x with both at batch {args.large_batch})" if scvi_big else ")"
    if scvi_tuned:
        ratio += f"; {s_cps / scvi_tuned:.1f}x SCVI run with the engine's malloc thresholds"
    print("\ntargets: SCVI-sized AE >= 10x SCVI:" + ratio +
          f"; default AE >= 50% of matmul ceiling: {100 * f_cell * cps / ceil:.1f}%"
          f"; data path < {10 if device.type == 'cuda' else 5}%: {100 * share:.2f}%"
          f"; engine vs DataLoader: {cps / dl_cps:.2f}x")


if __name__ == "__main__":
    main()
