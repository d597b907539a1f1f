"""Metrics (``bm.metrics``): integration (batch mixing, label conservation), agreement with a
simulation's ground truth, and two-sample metrics (generated vs real: MMD, classifier AUC,
KS, nearest-neighbour diversity). One file per family; every public name is in ``__all__``."""

from ._integration import (
    METRICS,
    Neighbors,
    asw_batch,
    asw_label,
    clisi,
    graph_connectivity,
    ilisi,
    integration_metrics,
    kbet,
    leiden_clusters,
    lisi,
    neighbors,
    nmi_ari_leiden,
    pcr_batch,
    silhouette_batch,
    silhouette_label,
)
from ._truth import condition_effect_recovery, estimate_condition_effects, process_like
from ._twosample import classifier_auc, ks_per_feature, mmd, nn_diversity, two_sample_table

__all__ = [
    "silhouette_batch",
    "silhouette_label",
    "METRICS",
    "Neighbors",
    "asw_batch",
    "asw_label",
    "clisi",
    "graph_connectivity",
    "ilisi",
    "integration_metrics",
    "kbet",
    "leiden_clusters",
    "lisi",
    "neighbors",
    "nmi_ari_leiden",
    "pcr_batch",
    "condition_effect_recovery",
    "estimate_condition_effects",
    "process_like",
    "mmd",
    "classifier_auc",
    "ks_per_feature",
    "nn_diversity",
    "two_sample_table",
]
