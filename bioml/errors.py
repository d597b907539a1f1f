"""The one error hierarchy of bioml.

Every error the library raises on purpose derives from :class:`BiomlError`, so the
command line and the Snakemake rule scripts can print it as one clear line and exit 1,
while a genuine bug (any other exception) still shows its traceback.

Hierarchy::

    BiomlError
    ├── InputError            bad input file, table, sample sheet or AnnData
    │   ├── DataValueError    non-numeric, NaN/inf, negative counts
    │   └── SampleSheetError  sheet/data mismatch, missing or single-level columns
    ├── ConfigError           configuration value that the schema cannot catch
    ├── DesignError           design matrix problems (rank, singleton batches)
    │   └── ConfoundedDesignError  batch aliased with a biological covariate
    ├── TrainingError         non-finite loss, bad checkpoint
    └── StructureError        unreadable or unsuitable protein structure
"""

from __future__ import annotations

__all__ = [
    "BiomlError",
    "InputError",
    "DataValueError",
    "SampleSheetError",
    "ConfigError",
    "DesignError",
    "ConfoundedDesignError",
    "TrainingError",
    "StructureError",
]


class BiomlError(Exception):
    """Base class of every error that bioml raises on purpose."""


class InputError(BiomlError):
    """An input file, table, sample sheet or AnnData is unusable.

    The message names the file (and where it helps, the row, column or key) and what is
    wrong with it.
    """


class DataValueError(InputError):
    """Values in the expression data are unusable (non-numeric, NaN/inf, negative counts)."""


class SampleSheetError(InputError):
    """The sample sheet does not fit the data, or lacks a usable batch/covariate column."""


class ConfigError(BiomlError):
    """A configuration value is inconsistent in a way the JSON schema cannot express."""


class DesignError(BiomlError):
    """The design matrix cannot support the requested model."""


class ConfoundedDesignError(DesignError):
    """Batch is aliased with (fully confounded by) a biological covariate."""


class TrainingError(BiomlError):
    """Training could not continue (non-finite loss, incompatible checkpoint, ...)."""


class StructureError(BiomlError):
    """A protein structure file cannot be read or used."""
