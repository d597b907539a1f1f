"""Model files of the model classes (autoencoder, flux VAE, interface GAN): one writer, one reader."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..io._atomic import atomic_path


def save_payload(payload: dict[str, Any], path: str | os.PathLike[str]) -> Path:
    """Write a model's payload with :func:`torch.save`, atomically (temporary file + rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    return path


def load_payload(path: str | os.PathLike[str], fmt: str, what: str) -> dict[str, Any]:
    """Read a payload written by :func:`save_payload` (on the CPU, tensors only).

    Raises :class:`~bioml.errors.InputError` when the file cannot be read or its ``format``
    is not ``fmt``; ``what`` names the kind of model in the messages.
    """
    try:
        p = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # noqa: BLE001
        raise InputError(f"cannot read {what} '{path}': {err}") from err
    if not isinstance(p, dict) or p.get("format") != fmt:
        raise InputError(f"'{path}' is not a bioml {what} file")
    return p
