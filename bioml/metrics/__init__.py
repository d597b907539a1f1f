"""Metrics (``bm.metrics``): integration (batch mixing, label conservation) and two-sample
metrics (generated vs real: MMD, classifier AUC, KS, nearest-neighbour diversity).
One file per family; every public name is listed in ``__all__``."""

from ._integration import silhouette_batch, silhouette_label
from ._twosample import classifier_auc, ks_per_feature, mmd, nn_diversity, two_sample_table

__all__ = [
    "silhouette_batch",
    "silhouette_label",
    "mmd",
    "classifier_auc",
    "ks_per_feature",
    "nn_diversity",
    "two_sample_table",
]
