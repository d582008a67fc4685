"""Benchmark metrics of the Cell BLAST paper and scIB integration metrics.

The Cell BLAST paper: Cao et al. 2020, "Searching large-scale scRNA-seq
databases via unbiased cell embedding with Cell BLAST", Nat. Commun. 11, 3458;
its metrics are defined in the Methods section named in each module.

One module per metric:

- :mod:`.map_score` — mean average precision (MAP) of neighbour cell types
- :mod:`.alignment` — Seurat alignment score
- :mod:`.balanced_accuracy` — per-type accuracy, accuracy, mean balanced accuracy (MBA)
- :mod:`.expected` — expected-prediction matrices (CSV or Cell Ontology)
- :mod:`.jsd` — Jensen–Shannon divergence of fate distributions
- :mod:`.ontology_accuracy` — CL accuracy and CL MBA
- :mod:`.integration` — iLISI, cLISI, silhouettes, graph connectivity, kBET (scib-metrics)
- :mod:`.rejection` — per-cell scores: AUROC/AUPRC of unseen types, accuracy-coverage (AURC),
  false-rejection rate, expected calibration error
"""

from cellquery.metrics.alignment import seurat_alignment_score
from cellquery.metrics.balanced_accuracy import (
    REJECTED,
    accuracy,
    mean_balanced_accuracy,
    per_type_accuracy,
)
from cellquery.metrics.expected import expected_from_csv, expected_from_ontology
from cellquery.metrics.integration import integration_metrics
from cellquery.metrics.jsd import jensen_shannon_divergence
from cellquery.metrics.map_score import map_from_embedding, mean_average_precision
from cellquery.metrics.ontology_accuracy import cl_accuracy, cl_mba
from cellquery.metrics.rejection import (
    accuracy_at_coverage,
    accuracy_coverage,
    auprc_unseen,
    aurc,
    auroc_unseen,
    expected_calibration_error,
    false_rejection_rate,
)

__all__ = [
    "REJECTED",
    "accuracy",
    "accuracy_at_coverage",
    "accuracy_coverage",
    "auprc_unseen",
    "aurc",
    "auroc_unseen",
    "cl_accuracy",
    "cl_mba",
    "expected_calibration_error",
    "expected_from_csv",
    "expected_from_ontology",
    "integration_metrics",
    "false_rejection_rate",
    "jensen_shannon_divergence",
    "map_from_embedding",
    "mean_average_precision",
    "mean_balanced_accuracy",
    "per_type_accuracy",
    "seurat_alignment_score",
]
