"""The engine's CUDA paths and every model on a GPU (marked ``gpu``: skipped by default and
wherever no CUDA device is visible; run with ``pytest -m gpu tests/test_gpu.py``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import sparse
from test_train import ToyAE, toy_data  # tests/ is on sys.path under pytest

import bioml as bm
from bioml.train import Trainer
from bioml.train._data import DataPath, batch_bounds

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _params(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().float().cpu() for k, v in module.state_dict().items()}


def _fit_toy(X, *, precision="32", **kw):
    m = ToyAE(n_in=(X["X"] if isinstance(X, dict) else X).shape[1])
    tr = Trainer(epochs=kw.pop("epochs", 3), batch_size=kw.pop("batch_size", 32), seed=3,
                 device="cuda", precision=precision, progress=False, **kw)
    tr.fit(m, X if isinstance(X, dict) else {"X": X})
    return m, tr


def test_resident_data_moves_to_the_gpu_once():
    """The training matrix is copied host-to-device once, not once per step."""
    X = toy_data(2000, 16)
    m = ToyAE(n_in=16)
    tr = Trainer(epochs=2, batch_size=32, seed=3, device="cuda", precision="32", progress=False)
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU,
                                            torch.profiler.ProfilerActivity.CUDA]) as prof:
        tr.fit(m, {"X": X})
    steps = 2 * len(batch_bounds(2000, 32))
    h2d = [e for e in prof.events() if "memcpy" in e.name.lower() and "htod" in e.name.lower()]
    assert tr.data_mode == "resident"
    assert all(p.device.type == "cuda" for p in m.parameters())
    # the matrix once, plus one permutation per epoch and the optimiser's scalars: far
    # fewer copies than minibatch steps
    assert 0 < len(h2d) < steps // 4, (len(h2d), steps)
    h = tr.history
    assert np.isfinite(h["loss"]).all() and h["loss"].iloc[-1] < h["loss"].iloc[0]


def test_streaming_and_sparse_paths_equal_resident_on_gpu():
    X = toy_data(300)
    X[np.abs(X) < 0.8] = 0
    data = {"X": X, "lab": np.arange(300)}
    ref, tr_ref = _fit_toy(data, val_fraction=0.1)
    assert tr_ref.data_mode == "resident"
    for d, budget, mode in [(data, 8_000, "streaming"),
                            ({"X": sparse.csr_matrix(X), "lab": np.arange(300)}, None, "sparse")]:
        m, tr = _fit_toy(d, val_fraction=0.1, max_device_bytes=budget)
        assert tr.data_mode == mode
        for k, v in _params(ref).items():  # same rows in the same order; same kernels
            torch.testing.assert_close(_params(m)[k], v, rtol=1e-5, atol=1e-6, msg=f"{mode}: {k}")


def test_streaming_chunks_are_pinned_copies_of_the_right_rows():
    X = torch.from_numpy(toy_data(500, 8))
    dp = DataPath({"X": X, "y": torch.arange(500)}, torch.device("cuda"), max_device_bytes=4_000)
    assert dp.mode == "streaming"
    assert not dp.host["X"].is_pinned()  # the source is not duplicated into pinned memory
    order = torch.randperm(500, generator=torch.Generator().manual_seed(0))
    bounds = batch_bounds(500, 32)
    seen = []
    for (start, stop), batch in zip(bounds, dp.iterate(order, bounds)):
        assert batch["X"].device.type == "cuda"
        torch.testing.assert_close(batch["X"].cpu(), X[order[start:stop]], rtol=0, atol=0)
        seen.append(batch["y"].cpu())
    assert torch.equal(torch.cat(seen), order)
    assert all(b is None or b["X"].is_pinned() for b in dp._buffers)


def test_bf16_autocast_trains_and_keeps_float32_weights():
    X = toy_data(1000, 16)
    m32, _ = _fit_toy(X, epochs=5)
    m16, tr = _fit_toy(X, epochs=5, precision="auto")
    assert tr._use_bf16() == torch.cuda.is_bf16_supported()
    assert all(p.dtype == torch.float32 for p in m16.parameters())
    with torch.no_grad():
        l32, l16 = (float(m.loss(torch.from_numpy(X).cuda())) for m in (m32, m16))
    assert np.isfinite(l16) and abs(l16 - l32) < 0.1 * l32


def test_resume_on_gpu_matches_uninterrupted(tmp_path):
    X = toy_data(400, 12)
    ref, _ = _fit_toy(X, epochs=4, val_fraction=0.1)

    class Stop(Exception):
        pass

    def stop_after_2(trainer, epoch, row):
        if epoch == 1:
            raise Stop

    m = ToyAE(n_in=12)
    tr = Trainer(epochs=4, batch_size=32, seed=3, device="cuda", precision="32", progress=False,
                 val_fraction=0.1, checkpoint_dir=tmp_path, checkpoint_every=1, callbacks=[stop_after_2])
    with pytest.raises(Stop):
        tr.fit(m, {"X": X})
    m2 = ToyAE(n_in=12)
    tr2 = Trainer(epochs=4, batch_size=32, seed=3, device="cuda", precision="32", progress=False,
                  val_fraction=0.1, checkpoint_dir=tmp_path, checkpoint_every=1, resume=True)
    tr2.fit(m2, {"X": X})
    assert len(tr2.history) == 4
    for k, v in _params(ref).items():
        torch.testing.assert_close(_params(m2)[k], v, rtol=1e-5, atol=1e-6, msg=k)


@pytest.fixture(scope="module")
def counts():
    a = bm.sim.simulate_counts(600, 400, n_anomalies=10, anomaly_strength=3.0, seed=3)
    bm.pp.qc(a, batch_key="batch", min_genes=10)
    return a


@pytest.mark.parametrize("domain_bn", [False, True])
def test_autoencoder_on_gpu_transforms_like_its_cpu_copy(counts, tmp_path, domain_bn):
    a = counts.copy()
    model = bm.tl.AutoencoderModel(hidden=(64, 16), latent=4, domain_bn=domain_bn)
    model.fit(a, batch_key="batch", balance_key="batch", epochs=8, batch_size=64, device="cuda",
              progress=False)
    assert str(model.trainer.device).startswith("cuda")
    assert np.isfinite(model.history["loss"]).all()
    z_gpu = model.transform(a)
    back = bm.tl.AutoencoderModel.load(model.save(tmp_path / "ae.pt"))
    assert all(p.device.type == "cpu" for p in back.module.parameters())
    np.testing.assert_allclose(back.transform(a), z_gpu, rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(back.reconstruction_error(a), model.reconstruction_error(a),
                               rtol=1e-3, atol=1e-5)


def test_flux_vae_on_gpu():
    pytest.importorskip("cobra")
    net = bm.flux.FluxNetwork.from_model("textbook")
    train = bm.flux.sample("textbook", 300, thinning=10, seed=11)
    vae = bm.flux.FluxVAE(net, latent=8, hidden=(32, 32), kl_warmup_epochs=2, seed=0)
    vae.fit(train, epochs=4, batch_size=64, device="cuda", progress=False)
    assert str(vae.trainer.device).startswith("cuda")
    v = vae.generate(50, seed=1, project=False)[0]
    assert np.isfinite(v).all()
    resid = np.abs(net.S @ v.T).max()  # the null-space decoder: S v = 0 by construction
    assert resid < 1e-6 * max(1.0, np.abs(v).max())


def test_interface_gan_on_gpu():
    sim = bm.sim.simulate_interface_features(300, seed=1)
    gan = bm.interface.InterfaceGAN(latent=8, hidden=(32, 32), n_critic=3, seed=0)
    gan.fit(sim, epochs=3, batch_size=60, device="cuda", progress=False)
    assert str(gan.trainer.device).startswith("cuda")
    assert gan.critic_spectral_norms().max() <= 1 + 1e-3
    out = gan.sample(40, seed=2)
    assert len(out) == 40 and np.isfinite(out.select_dtypes("number").to_numpy()).all()


def _plan_run(X, dom, *, graphs, dropout=0.0, precision="32", epochs=3, hook=False):
    from bioml.nn import Autoencoder
    from bioml.tl._autoencoder import _AutoencoderPlan

    torch.manual_seed(0)
    m = Autoencoder(X.shape[1], hidden=(64, 16), latent=4, dropout=dropout,
                    n_domains=0 if dom is None else int(dom.max()) + 1)
    if hook:
        m.encoder.register_forward_hook(lambda *a: None)
    plan = _AutoencoderPlan(m, {"name": "adam", "lr": 1e-3}, {"name": "constant"}, cuda_graphs=graphs)
    data = {"X": X} if dom is None else {"X": X, "domain": dom}
    tr = Trainer(epochs=epochs, batch_size=64, val_fraction=0.1, seed=5, device="cuda",
                 precision=precision, progress=False)
    tr.fit(plan, data)  # 1000 rows: 14 training minibatches, the last one merged (78 rows)
    return m, plan, tr.history


@pytest.mark.parametrize("domain_bn", [False, True])
def test_cuda_graph_steps_equal_eager_steps(domain_bn):
    X = toy_data(1000, 40)
    dom = np.repeat(np.arange(3), [400, 350, 250]) if domain_bn else None
    eager, p_eager, h_eager = _plan_run(X, dom, graphs=False)
    graphed, p_graph, h_graph = _plan_run(X, dom, graphs=True)
    assert p_eager._graph is None and p_graph._graph is not None
    for k, v in _params(eager).items():
        torch.testing.assert_close(_params(graphed)[k], v, rtol=1e-5, atol=1e-6, msg=k)
    np.testing.assert_allclose(h_graph["loss"], h_eager["loss"], rtol=1e-5)
    np.testing.assert_allclose(h_graph["val_loss"], h_eager["val_loss"], rtol=1e-5)


def test_cuda_graphs_with_dropout_and_bf16_train():
    X = toy_data(1000, 40)
    _, plan, h = _plan_run(X, None, graphs=True, dropout=0.2, precision="auto", epochs=6)
    assert plan._graph is not None
    assert np.isfinite(h["loss"]).all() and h["loss"].iloc[-1] < h["loss"].iloc[0]


def test_no_cuda_graph_where_a_hook_must_run():
    _, plan, h = _plan_run(toy_data(500, 40), None, graphs=True, hook=True, epochs=2)
    assert plan._graph is None and np.isfinite(h["loss"]).all()
