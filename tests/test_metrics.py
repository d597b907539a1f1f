"""Tests of bioml.metrics (integration metrics)."""

from __future__ import annotations

import numpy as np
import pytest

from bioml.errors import InputError
from bioml.metrics import silhouette_batch, silhouette_label


def _blobs(separate_batches: bool, seed=0):
    rng = np.random.default_rng(seed)
    X, batch, label = [], [], []
    for lab in range(3):
        for b in range(2):
            centre = np.array([10.0 * lab, 0.0]) + (np.array([0.0, 10.0 * b]) if separate_batches else 0)
            X.append(centre + rng.normal(scale=0.5, size=(30, 2)))
            batch += [f"b{b}"] * 30
            label += [f"l{lab}"] * 30
    return np.vstack(X), np.array(batch), np.array(label)


def test_silhouette_batch_mixed_vs_separated():
    X, b, lab = _blobs(False)
    mixed = silhouette_batch(X, b, lab)
    X2, b2, lab2 = _blobs(True)
    sep = silhouette_batch(X2, b2, lab2)
    assert mixed > 0.85 and sep < 0.2
    score, per = silhouette_batch(X, b, lab, return_per_label=True)
    assert score == pytest.approx(per.mean()) and len(per) == 3


def test_silhouette_label_separated_vs_random():
    X, b, lab = _blobs(False)
    assert silhouette_label(X, lab) > 0.9
    rng = np.random.default_rng(1)
    shuffled = rng.permutation(lab)
    assert 0.4 < silhouette_label(X, shuffled) < 0.55


def test_single_batch_labels_are_skipped_and_inputs_checked():
    X, b, lab = _blobs(False)
    b = np.where(lab == "l0", "b0", b)  # label l0 lives in one batch
    _, per = silhouette_batch(X, b, lab, return_per_label=True)
    assert "l0" not in per.index
    assert np.isnan(silhouette_batch(X, np.zeros(len(X)), lab))
    with pytest.raises(InputError):
        silhouette_label(X, lab[:-1])
    with pytest.raises(InputError):
        silhouette_label(X, np.zeros(len(X)))
    Xn = X.copy()
    Xn[0, 0] = np.nan
    with pytest.raises(InputError):
        silhouette_batch(Xn, b, lab)
