"""Running under SLURM: the device a training job picks, and the cluster profiles.

The end-to-end SLURM run (a real single-node cluster, results compared with a local run)
is `.ci/slurm.sh`, run by `.ci/run`; these tests are the fast parts that need no cluster.
"""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from bioml.errors import ConfigError
from bioml.train import resolve_device

REPO = Path(__file__).resolve().parents[1]

_PROBE = """
import logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout, format="%(name)s %(message)s")
from bioml.train import resolve_device
print("DEVICE", resolve_device("auto"))
"""


def _device_in_child(visible):
    """resolve_device('auto') in a fresh interpreter with CUDA_VISIBLE_DEVICES as SLURM sets it."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    if visible is None:
        env.pop("CUDA_VISIBLE_DEVICES", None)
    else:
        env["CUDA_VISIBLE_DEVICES"] = visible
    r = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout


def test_auto_falls_back_to_cpu_when_slurm_assigns_no_gpu():
    # A job without --gpus: SLURM leaves no GPU visible (here: an empty CUDA_VISIBLE_DEVICES,
    # which hides every GPU even on a GPU node).
    out = _device_in_child("")
    assert "DEVICE cpu" in out
    assert "bioml.train device auto: cpu (no CUDA device visible; CUDA_VISIBLE_DEVICES='')" in out


def test_explicit_cuda_without_an_assigned_gpu_is_a_config_error():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is visible in this process")
    with pytest.raises(ConfigError, match="CUDA_VISIBLE_DEVICES"):
        resolve_device("cuda")


def test_auto_logs_its_choice(caplog):
    with caplog.at_level(logging.INFO, logger="bioml.train"):
        dev = resolve_device("auto")
    assert dev.type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert any(r.getMessage().startswith(f"device auto: {dev}") for r in caplog.records)


@pytest.mark.gpu
def test_auto_takes_the_gpu_slurm_assigned():
    # SLURM exports the assigned GPU's index; torch numbers the visible devices from 0.
    n = torch.cuda.device_count()
    assert n >= 1
    last = str(n - 1)
    out = _device_in_child(last)
    assert "DEVICE cuda:0" in out
    assert f"CUDA_VISIBLE_DEVICES='{last}', 1 visible" in out


def _profile(name):
    return yaml.safe_load((REPO / "profiles" / name / "config.yaml").read_text())


def test_slurm_profile_asks_for_a_gpu_on_training_rules_only():
    prof = _profile("slurm")
    assert prof["executor"] == "slurm"
    assert "gpu" not in prof["default-resources"] and "gres" not in prof["default-resources"]
    embed = prof["set-resources"]["embed"]
    assert embed["gpu"] == 1 and embed["cpus_per_gpu"] >= 1
    # The rules themselves keep gpu at 0 (the profile asks), and only training rules declare it.
    rules = {p.stem: p.read_text() for p in (REPO / "workflow" / "rules").glob("*.smk")}
    assert "gpu=0" in rules["embed"]
    for name in ("ingest", "qc", "correct"):
        assert "gpu" not in rules[name], name


def test_local_test_profile_requests_no_gpu():
    prof = _profile("slurm-local")
    assert prof["executor"] == "slurm"
    assert prof["default-resources"]["slurm_partition"] == "debug"
    assert int(prof["slurm-init-seconds-before-status-checks"]) <= 5

    def keys(d):
        for k, v in d.items():
            yield k
            if isinstance(v, dict):
                yield from keys(v)

    assert not {"gpu", "gres", "gpu_model", "cpus_per_gpu"} & set(keys(prof))
