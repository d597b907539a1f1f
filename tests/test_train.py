"""Tests of the training engine (bioml.train)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import sparse

from bioml.errors import ConfigError, TrainingError
from bioml.train import (
    StepContext,
    Trainer,
    TrainingModule,
    balanced_order,
    batch_bounds,
    make_optimizer,
    make_scheduler,
    plot_history,
    resolve_device,
)

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent


# -- toy models ---------------------------------------------------------------------------
class ToyAE(TrainingModule):
    """Tiny BN + dropout autoencoder: exercises BN buffers, dropout RNG, Adam state."""

    def __init__(self, n_in=12, *, optimizer="adam", lr=1e-2, schedule="constant", sched_kw=None,
                 seed=0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = torch.nn.Sequential(
            torch.nn.Linear(n_in, 8), torch.nn.BatchNorm1d(8), torch.nn.ReLU(), torch.nn.Dropout(0.2),
            torch.nn.Linear(8, n_in),
        )
        self.opt_kw = dict(name=optimizer, lr=lr)
        self.sched_kw = dict(name=schedule, **(sched_kw or {}))
        self.batch_sizes: list[int] = []

    def configure_optimizers(self):
        opt = make_optimizer(self.parameters(), **self.opt_kw)
        s = make_scheduler(opt, **self.sched_kw)
        return {"main": opt}, ({"main": s} if s is not None else {})

    def loss(self, x):
        return ((self.net(x) - x) ** 2).mean()

    def training_step(self, batch, ctx):
        self.batch_sizes.append(batch["X"].shape[0])
        loss = self.loss(batch["X"])
        ctx.step_optimizer("main", loss)
        return {"loss": loss.detach()}

    def validation_step(self, batch, ctx):
        return {"loss": self.loss(batch["X"])}


def toy_data(n=203, g=12, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(n, g)).astype(np.float32)


def params_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def run_toy(checkpoint_dir=None, *, resume=False, callbacks=(), epochs=6, **kw):
    """Used in-process and by the killed subprocess (keep the settings identical)."""
    torch.set_num_threads(1)
    m = ToyAE()
    tr = Trainer(epochs=epochs, batch_size=32, val_fraction=0.2, seed=7, device="cpu",
                 checkpoint_dir=checkpoint_dir, checkpoint_every=1 if checkpoint_dir else None,
                 resume=resume, callbacks=callbacks, progress=False, **kw)
    tr.fit(m, {"X": toy_data()})
    return m, tr


# -- tests ---------------------------------------------------------------------------------
def test_bitwise_reproducible_and_seed_matters():
    a, ta = run_toy()
    b, tb = run_toy()
    assert params_equal(a, b)
    pd.testing.assert_frame_equal(ta.history.drop(columns="seconds"), tb.history.drop(columns="seconds"))
    m = ToyAE()
    Trainer(epochs=6, batch_size=32, val_fraction=0.2, seed=8, device="cpu", progress=False).fit(
        m, toy_data())
    assert not params_equal(a, m)
    # the caller's global RNG is untouched by a run
    m = ToyAE()  # (its constructor seeds the global RNG itself)
    torch.manual_seed(123)
    r1 = torch.rand(3)
    torch.manual_seed(123)
    Trainer(epochs=1, batch_size=32, device="cpu", progress=False).fit(m, toy_data())
    assert torch.equal(torch.rand(3), r1)


_KILL_SCRIPT = """
import sys, time, os
sys.path.insert(0, {tests!r})
sys.path.insert(0, {repo!r})
from test_train import run_toy
def hook(trainer, epoch, row):
    if epoch == {k}:
        open({marker!r}, "w").write("x")
        time.sleep(120)   # parent SIGKILLs us here
run_toy({ckpt!r}, callbacks=[hook])
"""


def test_resume_after_real_kill_equals_uninterrupted(tmp_path):
    ref, tr_ref = run_toy()
    ckpt = tmp_path / "ck"
    marker = tmp_path / "epoch_done"
    script = tmp_path / "train.py"
    script.write_text(_KILL_SCRIPT.format(tests=str(TESTS), repo=str(REPO), k=2, marker=str(marker),
                                          ckpt=str(ckpt)))
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    t0 = time.time()
    try:
        while not marker.exists():
            if proc.poll() is not None:
                raise AssertionError(f"subprocess ended early: {proc.stderr.read().decode()}")
            if time.time() - t0 > 180:  # importing torch and scanpy on a loaded machine is slow
                raise AssertionError("subprocess did not reach epoch 3 in 180 s")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:  # also on a failure above: never leave the child running
            proc.kill()
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    ck = torch.load(ckpt / "last.pt", weights_only=True)
    assert ck["epoch"] == 3 and not ck["finished"]
    resumed, tr = run_toy(ckpt, resume=True)
    assert params_equal(resumed, ref)
    assert len(tr.history) == 6
    pd.testing.assert_frame_equal(tr.history.drop(columns="seconds"),
                                  tr_ref.history.drop(columns="seconds"))
    # a finished checkpoint resumes to the same result without training
    again, _ = run_toy(ckpt, resume=True)
    assert params_equal(again, ref)


def test_resume_after_os_exit(tmp_path):
    ref, _ = run_toy()
    ckpt = tmp_path / "ck"
    code = textwrap.dedent(f"""
        import sys, os
        sys.path.insert(0, {str(TESTS)!r}); sys.path.insert(0, {str(REPO)!r})
        from test_train import run_toy
        def hook(trainer, epoch, row):
            if epoch == 3:
                os._exit(17)
        run_toy({str(ckpt)!r}, callbacks=[hook])
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=120)
    assert res.returncode == 17, res.stderr.decode()
    resumed, _ = run_toy(ckpt, resume=True)
    assert params_equal(resumed, ref)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    run_toy(tmp_path, epochs=2)
    m = ToyAE()
    tr = Trainer(epochs=2, batch_size=16, val_fraction=0.2, seed=7, device="cpu",
                 checkpoint_dir=tmp_path, resume=True, progress=False)
    with pytest.raises(TrainingError, match="different run"):
        tr.fit(m, toy_data())


def test_last_minibatch_merge_rule():
    assert batch_bounds(65, 32) == [(0, 32), (32, 65)]
    assert batch_bounds(64, 32) == [(0, 32), (32, 64)]
    assert batch_bounds(66, 32) == [(0, 32), (32, 64), (64, 66)]
    assert batch_bounds(1, 32, 1) == [(0, 1)]
    with pytest.raises(ConfigError):
        batch_bounds(1, 32, 2)
    m = ToyAE()
    n = 32 * 4 + 1
    Trainer(epochs=2, batch_size=32, device="cpu", progress=False).fit(m, toy_data(n))
    assert min(m.batch_sizes) >= 2
    assert m.batch_sizes[:4] == [32, 32, 32, 33]
    assert sum(m.batch_sizes) == 2 * n


def test_class_balanced_sampling_repeat_rate():
    codes = torch.tensor([0] * 900 + [1] * 100)
    order, rate = balanced_order(codes, torch.Generator().manual_seed(0))
    frac_min = float((codes[order] == 1).float().mean())
    assert abs(frac_min - 0.5) < 0.05
    # ~500 draws over 100 minority rows, nearly all drawn: about 5 draws per drawn row
    assert 4.0 < rate < 6.0
    assert math.isnan(balanced_order(torch.tensor([0, 1] * 50), torch.Generator().manual_seed(0))[1])
    m = ToyAE()
    labels = np.array(["a"] * 180 + ["b"] * 23)
    tr = Trainer(epochs=3, batch_size=32, device="cpu", progress=False)
    h = tr.fit(m, toy_data(), balance_by=labels)
    assert "repeat_rate" in h and (h["repeat_rate"] > 2).all()


@pytest.mark.parametrize("name,kw,expected", [
    ("constant", {}, lambda t: 0.1),
    ("step", dict(step_size=3, gamma=0.5), lambda t: 0.1 * 0.5 ** (t // 3)),
    ("polynomial", dict(t0=4.0, power=0.75), lambda t: 0.1 / (1 + t / 4.0) ** 0.75),
    ("cosine", dict(T_0=5, eta_min=0.01),
     lambda t: 0.01 + (0.1 - 0.01) * (1 + math.cos(math.pi * (t % 5) / 5)) / 2),
])
def test_schedules_lr_sequence(name, kw, expected):
    p = torch.nn.Parameter(torch.zeros(2))
    opt = make_optimizer([p], "sgd", lr=0.1, momentum=0.9, nesterov=True)
    s = make_scheduler(opt, name, **kw)
    got = []
    for _ in range(12):
        got.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones(2)
        opt.step()
        if s is not None:
            s.step()
    np.testing.assert_allclose(got, [expected(t) for t in range(12)], rtol=1e-12)


def test_schedule_through_trainer_history():
    m = ToyAE(schedule="polynomial", sched_kw=dict(t0=2.0, power=1.0), lr=0.05)
    h = Trainer(epochs=5, batch_size=64, device="cpu", progress=False).fit(m, toy_data())
    np.testing.assert_allclose(h["lr"], [0.05 / (1 + t / 2.0) for t in range(5)], rtol=1e-12)


def test_optimizer_and_device_validation():
    p = [torch.nn.Parameter(torch.zeros(1))]
    with pytest.raises(ConfigError):
        make_optimizer(p, "rmsprop")
    with pytest.raises(ConfigError):
        make_optimizer(p, "sgd", momentum=0.0, nesterov=True)
    with pytest.raises(ConfigError):
        make_scheduler(make_optimizer(p, "adamw"), "linear")
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ConfigError):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="CUDA is not available"):
            resolve_device("cuda:0")


class ClipProbe(ToyAE):
    def __init__(self):
        super().__init__(optimizer="sgd", lr=1e-4)
        self.norms_after, self.norms_before = [], []

    def training_step(self, batch, ctx):
        loss = 1e4 * self.loss(batch["X"])
        before = ctx.step_optimizer("main", loss)
        self.norms_before.append(float(before))
        g = torch.sqrt(sum((p.grad ** 2).sum() for p in self.parameters() if p.grad is not None))
        self.norms_after.append(float(g))
        return {"loss": loss.detach()}


def test_gradient_clipping_bounds_the_norm():
    m = ClipProbe()
    Trainer(epochs=2, batch_size=32, clip_grad_norm=0.5, device="cpu", progress=False).fit(m, toy_data())
    assert max(m.norms_before) > 5  # clipping was active
    assert max(m.norms_after) <= 0.5 * (1 + 1e-5)


class GradsAE(ToyAE):
    """ToyAE that hands its gradients to ``step_optimizer(grads=...)`` (computed here with
    ``torch.autograd.grad``; a model with a written-out backward does the same)."""

    def training_step(self, batch, ctx):
        loss = self.loss(batch["X"])
        params = [p for p in self.parameters() if p.requires_grad]
        ctx.step_optimizer("main", grads=list(zip(params, torch.autograd.grad(loss, params))))
        return {"loss": loss.detach()}


def test_step_optimizer_takes_gradients_as_a_loss_backward_would():
    """Gradients passed as ``grads`` train exactly as ``backward`` on the loss does, with
    clipping and a per-step schedule; ``zero_grad=False`` adds them to ``.grad``; a loss
    and grads together are refused."""
    kw = dict(epochs=3, batch_size=32, clip_grad_norm=0.05, device="cpu", progress=False, seed=3)
    a, b = ToyAE(lr=0.05), GradsAE(lr=0.05)
    ha = Trainer(**kw).fit(a, toy_data())
    hb = Trainer(**kw).fit(b, toy_data())
    assert params_equal(a, b)
    assert ha["loss"].tolist() == hb["loss"].tolist()
    lin = torch.nn.Linear(3, 1)
    opt = make_optimizer(lin.parameters(), "sgd", lr=1.0, momentum=0.0)
    ctx = StepContext(optimizers={"main": opt}, schedulers={}, device=torch.device("cpu"), n_epochs=1)
    w0 = lin.weight.detach().clone()
    lin.weight.grad = torch.ones_like(lin.weight)
    ctx.step_optimizer("main", grads=[(lin.weight, torch.full_like(lin.weight, 2.0))], zero_grad=False)
    assert torch.equal(lin.weight.detach(), w0 - 3.0)
    assert lin.bias.grad is None
    ctx.step_optimizer("main", grads=[(lin.weight, torch.full_like(lin.weight, 2.0))])
    assert torch.equal(lin.weight.grad, torch.full_like(lin.weight, 2.0))
    with pytest.raises(ConfigError, match="not both"):
        ctx.step_optimizer("main", lin(torch.ones(1, 3)).sum(), grads=[])


class ScriptedVal(ToyAE):
    """Validation loss follows a script, so the best epoch is known (epoch 3)."""

    script = [5.0, 4.0, 3.0, 3.5, 4.0, 4.5, 5.0, 6.0]

    def validation_step(self, batch, ctx):
        return {"loss": torch.tensor(self.script[ctx.epoch]), "mse": self.loss(batch["X"])}


def test_early_stopping_restores_best_weights():
    m = ScriptedVal()
    snaps = {}

    def snap(trainer, epoch, row):
        snaps[epoch + 1] = {k: v.clone() for k, v in m.state_dict().items()}

    tr = Trainer(epochs=8, batch_size=32, val_fraction=0.2, early_stopping_patience=2, device="cpu",
                 progress=False, callbacks=[snap])
    h = tr.fit(m, toy_data())
    assert len(h) == 5 and tr.stopped_early and tr.best_epoch == 3
    assert "val_mse" in h
    assert all(torch.equal(m.state_dict()[k], snaps[3][k]) for k in snaps[3])
    assert not all(torch.equal(m.state_dict()[k], snaps[5][k]) for k in snaps[5])


class NaNAt(ToyAE):
    def training_step(self, batch, ctx):
        out = super().training_step(batch, ctx)
        if ctx.epoch == 2 and ctx.step == 1:
            return {"loss": torch.tensor(float("nan"))}
        return out


def test_non_finite_loss_raises_and_keeps_checkpoint(tmp_path):
    tr = Trainer(epochs=5, batch_size=32, device="cpu", progress=False, checkpoint_dir=tmp_path,
                 checkpoint_every=1)
    with pytest.raises(TrainingError, match=r"epoch 3 .*step 1 .*learning rate") as err:
        tr.fit(NaNAt(), toy_data())
    assert "last good checkpoint" in str(err.value)
    ck = torch.load(tmp_path / "last.pt", weights_only=True)
    assert ck["epoch"] == 2


def test_streaming_and_sparse_paths_equal_resident():
    X = toy_data(300)
    X[np.abs(X) < 0.8] = 0
    ref, tr_ref = ToyAE(), Trainer(epochs=3, batch_size=32, val_fraction=0.1, seed=3, device="cpu",
                                   progress=False)
    tr_ref.fit(ref, {"X": X, "lab": np.arange(300)})
    assert tr_ref.data_mode == "resident"
    for data, budget, mode in [({"X": X, "lab": np.arange(300)}, 8_000, "streaming"),
                               ({"X": sparse.csr_matrix(X), "lab": np.arange(300)}, None, "sparse")]:
        m = ToyAE()
        tr = Trainer(epochs=3, batch_size=32, val_fraction=0.1, seed=3, device="cpu", progress=False,
                     max_device_bytes=budget)
        tr.fit(m, data)
        assert tr.data_mode == mode
        assert params_equal(m, ref), mode


class ToyWGAN(TrainingModule):
    """WGAN-GP: n_critic critic steps per generator step, gradient penalty (double backward)."""

    def __init__(self, dim=12, n_critic=3):
        super().__init__()
        torch.manual_seed(0)
        self.n_critic = n_critic
        self.gen = torch.nn.Sequential(torch.nn.Linear(4, 16), torch.nn.ReLU(), torch.nn.Linear(16, dim))
        self.critic = torch.nn.Sequential(torch.nn.Linear(dim, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        self.critic_steps = 0
        self.gen_steps = 0

    def configure_optimizers(self):
        return {
            "critic": make_optimizer(self.critic.parameters(), "adam", lr=1e-3, betas=(0.5, 0.9)),
            "generator": make_optimizer(self.gen.parameters(), "adam", lr=1e-3, betas=(0.5, 0.9)),
        }

    def training_step(self, batch, ctx: StepContext):
        real = batch["X"]
        n = real.shape[0]
        for _ in range(self.n_critic):
            fake = self.gen(torch.randn(n, 4)).detach()
            eps = torch.rand(n, 1)
            mix = (eps * real + (1 - eps) * fake).requires_grad_(True)
            grad = torch.autograd.grad(self.critic(mix).sum(), mix, create_graph=True)[0]
            gp = ((grad.norm(dim=1) - 1) ** 2).mean()
            loss_c = self.critic(fake).mean() - self.critic(real).mean() + 10 * gp
            ctx.step_optimizer("critic", loss_c)
            self.critic_steps += 1
        loss_g = -self.critic(self.gen(torch.randn(n, 4))).mean()
        ctx.step_optimizer("generator", loss_g)
        self.gen_steps += 1
        return {"critic": loss_c.detach(), "generator": loss_g.detach(), "gp": gp.detach()}


def test_gan_with_two_optimizers_and_n_critic(tmp_path):
    m = ToyWGAN()
    tr = Trainer(epochs=2, batch_size=64, device="cpu", progress=False, checkpoint_dir=tmp_path,
                 clip_grad_norm=10.0)
    h = tr.fit(m, toy_data())
    steps = 2 * len(batch_bounds(203, 64))
    assert m.gen_steps == steps and m.critic_steps == 3 * steps
    assert {"critic", "generator", "gp", "lr_critic", "lr_generator"} <= set(h.columns)
    ck = torch.load(tmp_path / "last.pt", weights_only=True)
    assert set(ck["optimizers"]) == {"critic", "generator"}
    st = ck["optimizers"]["critic"]["state"][0]["step"]
    assert float(st) == 3 * steps


class ToyVAE(TrainingModule):
    """VAE whose KL weight warms up linearly over the first epochs (reads ctx.epoch)."""

    def __init__(self, dim=12, warmup=4):
        super().__init__()
        torch.manual_seed(0)
        self.enc = torch.nn.Linear(dim, 4)
        self.dec = torch.nn.Linear(2, dim)
        self.warmup = warmup

    def configure_optimizers(self):
        return {"main": make_optimizer(self.parameters(), "adamw", lr=1e-2, weight_decay=1e-4)}

    def training_step(self, batch, ctx):
        x = batch["X"]
        mu, logvar = self.enc(x).chunk(2, dim=1)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        rec = ((self.dec(z) - x) ** 2).sum(1).mean()
        kl = (-0.5 * (1 + logvar - mu ** 2 - logvar.exp()).sum(1)).mean()
        beta = min(1.0, ctx.epoch / self.warmup)
        loss = rec + beta * kl
        ctx.step_optimizer("main", loss)
        return {"loss": loss.detach(), "kl": kl.detach(), "beta": beta}


def test_vae_kl_warmup_reads_epoch():
    h = Trainer(epochs=6, batch_size=64, device="cpu", progress=False).fit(ToyVAE(), toy_data())
    np.testing.assert_allclose(h["beta"], [0, 0.25, 0.5, 0.75, 1.0, 1.0])


def test_history_tsv_plot_and_log_lines(tmp_path, caplog):
    with caplog.at_level("INFO", logger="bioml.train"):
        m, tr = run_toy(epochs=3)
    assert sum("epoch" in r.getMessage() for r in caplog.records) >= 3
    path = tr.save_history(tmp_path / "h.tsv")
    back = pd.read_csv(path, sep="\t")
    assert list(back.columns[:2]) == ["epoch", "loss"] and len(back) == 3
    assert {"val_loss", "lr", "seconds"} <= set(back.columns)
    fig = plot_history(back)
    assert fig.axes and fig.axes[0].get_lines()


def test_bad_settings():
    with pytest.raises(ConfigError):
        Trainer(epochs=0)
    with pytest.raises(ConfigError):
        Trainer(val_fraction=1.0)
    with pytest.raises(ConfigError):
        Trainer(resume=True)
    with pytest.raises(ConfigError, match="monitor"):
        Trainer(epochs=1, val_fraction=0.2, monitor="nope", device="cpu", progress=False).fit(
            ToyAE(), toy_data())


def test_adam_fused_by_default_on_cpu_and_matches_unfused():
    from bioml.train import make_optimizer

    def run(fused):
        torch.manual_seed(0)
        lin = torch.nn.Linear(7, 3)
        opt = make_optimizer(lin.parameters(), "adamw", lr=1e-2, weight_decay=0.1, fused=fused)
        x = torch.randn(32, 7)
        for _ in range(20):
            opt.zero_grad()
            lin(x).pow(2).mean().backward()
            opt.step()
        return opt, lin.weight.detach().clone()

    auto, w_auto = run(None)
    assert auto.defaults["fused"] is True
    _, w_plain = run(False)
    torch.testing.assert_close(w_auto, w_plain, rtol=1e-5, atol=1e-6)
    # parameter groups given as dicts (with a generator of parameters) are accepted too
    lin = torch.nn.Linear(2, 2)
    opt = make_optimizer([{"params": (p for p in lin.parameters())}], "adam")
    assert len(opt.param_groups[0]["params"]) == 2 and opt.defaults["fused"] is True


@pytest.mark.parametrize("name,wd", [("adam", 0.0), ("adam", 0.05), ("adamw", 0.05)])
def test_lean_fused_adam_step_is_bitwise_torchs(name, wd):
    """bioml's fused Adam/AdamW take a shorter step path that must equal torch's fused
    optimiser bitwise: with a schedule, two parameter groups, a state_dict round trip
    mid-run, a step without some gradients, and a closure; step hooks run once a step
    while registered, and a profiler sees the step's range."""
    from bioml.train import make_optimizer

    torch.manual_seed(0)
    nets = [torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.ReLU(), torch.nn.Linear(7, 2))
            for _ in range(2)]
    nets[1].load_state_dict(nets[0].state_dict())

    def groups(net):
        return [{"params": list(net[0].parameters())}, {"params": list(net[2].parameters()), "lr": 3e-3}]

    ours = make_optimizer(groups(nets[0]), name, lr=1e-2, weight_decay=wd)
    cls = torch.optim.Adam if name == "adam" else torch.optim.AdamW
    theirs = cls(groups(nets[1]), lr=1e-2, weight_decay=wd, fused=True)
    assert isinstance(ours, cls) and type(ours) is not cls and type(ours).__name__ == cls.__name__
    calls = []
    scheds = [torch.optim.lr_scheduler.StepLR(o, 3, 0.5) for o in (ours, theirs)]
    for i in range(12):
        if i == 3:
            hook = ours.register_step_post_hook(lambda *a: calls.append(1))
        if i == 9:
            hook.remove()
        x = torch.randn(16, 5)
        for net, opt in zip(nets, (ours, theirs)):
            opt.zero_grad()
            if i == 7:  # only the last layer has gradients this step
                net[2](torch.relu(net[0](x)).detach()).pow(2).mean().backward()
            else:
                net(x).pow(2).mean().backward()
            if i == 9:
                opt.step(lambda: None)
            else:
                opt.step()
        for s in scheds:
            s.step()
        if i == 4:
            ours.load_state_dict(ours.state_dict())
        if i in (2, 5):
            assert ours._lean is not None  # the short path is in use
    for p, q in zip(nets[0].parameters(), nets[1].parameters()):
        assert torch.equal(p, q)
    assert len(calls) == 6  # steps 3 to 8, once each
    torch.testing.assert_close(ours.state_dict()["state"][0]["exp_avg"],
                               theirs.state_dict()["state"][0]["exp_avg"], rtol=0, atol=0)
    with torch.profiler.profile() as prof:
        ours.step()
    assert f"Optimizer.step#{cls.__name__}.step" in {e.name for e in prof.events()}


_FAULTS = """
import ctypes, resource, sys, torch
from bioml.train import tune_cpu_allocator
outcome = tune_cpu_allocator()

def rounds(k):  # the training-step pattern: several large tensors alive, then all freed
    for _ in range(k):
        ts = [torch.ones(1 << 20) for _ in range(5)]
        del ts

class Info(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd",
                                              "usmblks", "fsmblks", "uordblks", "fordblks", "keepcost")]

libc = ctypes.CDLL(None)
libc.mallinfo2.restype = Info

def mmapped(nbytes):  # did a fresh tensor of nbytes get its own mmap (not the heap)?
    before = libc.mallinfo2().hblkhd
    t = torch.empty(nbytes // 4)
    return int(libc.mallinfo2().hblkhd - before >= nbytes)

rounds(3)
f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
rounds(20)
print(outcome, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0, mmapped(16 << 20), mmapped(48 << 20))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc tuning is Linux-only")
def test_cpu_allocator_tuning_stops_refaulting_freed_tensors():
    """Tuned, a 16 MiB tensor comes from the heap (a 48 MiB one is still mmapped) and freed
    4 MiB tensors are reused without new page faults. Untuned, whether glibc trims the
    freed tensors depends on the heap's layout after imports (the engine's own steps
    measured 100-550 faults a step untuned, 20-50 tuned; bioml/train/_alloc.py), so only
    the outcome of the switches is checked there."""
    import platform

    if platform.libc_ver()[0] != "glibc" or platform.libc_ver()[1] < "2.33":
        pytest.skip("needs glibc >= 2.33 (mallinfo2)")

    def run(**env):
        e = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", "GLIBC_TUNABLES"))}
        out = subprocess.run([sys.executable, "-c", _FAULTS], env={**e, **env}, check=True,
                             capture_output=True, text=True).stdout.split()
        return out[0], *map(int, out[1:])

    tuned, faults_tuned, mm16, mm48 = run()
    assert tuned == "tuned" and (mm16, mm48) == (0, 1)
    assert faults_tuned < 0.05 * (20 * 5 * (4 << 20) // 4096)
    assert run(BIOML_TUNE_ALLOCATOR="0")[0] == "disabled"
    assert run(MALLOC_TRIM_THRESHOLD_="131072")[0] == "user"
    # the trainer applies it for CPU runs, and can be told not to
    tr = Trainer(epochs=1, device="cpu", tune_allocator=False)
    tr.fit(ToyAE(), toy_data())
    assert tr.allocator is None
    tr = Trainer(epochs=1, device="cpu", progress=False)
    tr.fit(ToyAE(), toy_data())
    assert tr.allocator in ("tuned", "disabled", "user")
