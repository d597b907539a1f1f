"""Metrics (``bm.metrics``): integration (batch mixing, label conservation) and, later,
two-sample metrics. One file per family; every public name is listed in ``__all__``."""

from ._integration import silhouette_batch, silhouette_label

# isort: split
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
)
from ._truth import condition_effect_recovery, estimate_condition_effects, process_like

__all__ = ["silhouette_batch", "silhouette_label"]
__all__ += [
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
]
