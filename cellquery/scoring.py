"""Score one run's predictions with the metric suite: tidy rows for the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.settings import GroupSettings
from cellquery.summary import SWEEP_COLUMNS, metric_rows
from cellquery.transfer import AMBIGUOUS, REJECTED, sweep_column


def expected_matrix(predictions: pd.DataFrame, reference_obs: pd.DataFrame, group: GroupSettings):
    """The group's expected-prediction matrix: its CSV, else derived from the Cell Ontology, else None."""
    from cellquery.metrics import expected_from_csv, expected_from_ontology
    from cellquery.ontology import load_cell_ontology

    if group.expected:
        return expected_from_csv(group.expected)
    ontology_key = group.ontology_key
    if not ontology_key:
        return None
    label_key = group.label_key
    type_to_cl = dict(zip(predictions["true_label"], predictions["true_cl"]))
    type_to_cl.update(dict(zip(reference_obs[label_key].astype(str), reference_obs[ontology_key].astype(str))))
    ref_types = sorted(set(reference_obs[label_key].astype(str)))
    return expected_from_ontology(sorted(set(predictions["true_label"])), ref_types, type_to_cl, load_cell_ontology())


def score_predictions(
    predictions: pd.DataFrame,
    *,
    reference_obs: pd.DataFrame,
    group: GroupSettings,
    run: dict,
    embedding_scores: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """All metrics of one (group, method, index, transfer, seed) run as tidy summary rows.

    ``embedding_scores`` (a two-column metric/value table of the run's
    embedding) are repeated into the run's rows, so that every run's file is
    complete on its own.
    """
    from cellquery import metrics as m

    ref_types = sorted(set(reference_obs[group.label_key].astype(str)))
    true = predictions["true_label"].astype(str).to_numpy()
    pred = predictions["prediction"].astype(str).to_numpy()
    mba = m.mean_balanced_accuracy(true, pred, ref_types, expected=expected_matrix(predictions, reference_obs, group))
    scores = {
        "accuracy": m.accuracy(true, pred, ref_types),
        "mba_positive": mba["positive"],
        "mba_negative": mba["negative"],
        "mba": mba["mean"],
        "rejected_fraction": float(np.mean(pred == REJECTED)),
        "ambiguous_fraction": float(np.mean(pred == AMBIGUOUS)),
    }
    keys = list(group.continuous_keys)
    if keys:
        true_fates = predictions[[f"true_{k}" for k in keys]].to_numpy(float)
        pred_fates = predictions[[f"pred_{k}" for k in keys]].to_numpy(float)
        made = ~np.isnan(pred_fates).any(axis=1)
        # JSD over the cells that received a fate prediction (rejected cells get none).
        scores["jsd"] = float(np.mean(m.jensen_shannon_divergence(true_fates[made], pred_fates[made]))) if made.any() else np.nan
    if group.ontology_key:
        from cellquery.ontology import load_cell_ontology

        ontology = load_cell_ontology()
        ref_cls = sorted(set(reference_obs[group.ontology_key].astype(str)))
        true_cl = predictions["true_cl"].astype(str).to_numpy()
        pred_cl = predictions["pred_cl"].astype(str).to_numpy()
        per_term = m.cl_accuracy(true_cl, pred_cl, ref_cls, ontology)
        scores["cl_accuracy"] = float(np.average(per_term["accuracy"], weights=per_term["n_cells"]))
        scores["cl_mba"] = m.cl_mba(true_cl, pred_cl, ref_cls, ontology)
    if embedding_scores is not None:
        scores.update(dict(zip(embedding_scores["metric"], embedding_scores["value"])))
    return metric_rows(run, scores)


def sweep_scores(
    predictions: pd.DataFrame,
    *,
    reference_obs: pd.DataFrame,
    group: GroupSettings,
    run: dict,
    thresholds: list[float] | tuple[float, ...] = (),
) -> pd.DataFrame:
    """MBA on positive and negative types at each rejection threshold of a run (Supp. Fig. 9c of Cell BLAST).

    One row per threshold t in ``thresholds`` whose column
    :func:`cellquery.transfer.sweep_column` the run's predictions hold, and one
    for the run's own ``prediction`` (threshold NaN), with the run's keys in
    front. MBA is the same ontology-aware mean balanced accuracy as in
    :func:`score_predictions`.
    """
    from cellquery import metrics as m

    ref_types = sorted(set(reference_obs[group.label_key].astype(str)))
    true = predictions["true_label"].astype(str).to_numpy()
    expected = expected_matrix(predictions, reference_obs, group)
    columns = {float("nan"): "prediction"}
    columns.update({float(t): sweep_column(t) for t in thresholds if sweep_column(t) in predictions.columns})
    rows = []
    for threshold, column in columns.items():
        mba = m.mean_balanced_accuracy(true, predictions[column].astype(str).to_numpy(), ref_types, expected=expected)
        rows.append({**run, "threshold": threshold, "mba_positive": mba["positive"], "mba_negative": mba["negative"], "mba": mba["mean"]})
    return pd.DataFrame(rows)[SWEEP_COLUMNS]


def mixing_batches(reference_obs: pd.DataFrame, query_obs: pd.DataFrame, group: GroupSettings) -> np.ndarray:
    """Batches whose mixing is scored: the group's first batch key, else the dataset of origin."""
    key = group.batch_key or "dataset"
    return np.concatenate([reference_obs[key].astype(str).to_numpy(), query_obs[key].astype(str).to_numpy()])


def score_embedding(
    reference_embedding: np.ndarray,
    query_embedding: np.ndarray,
    *,
    reference_obs: pd.DataFrame,
    query_obs: pd.DataFrame,
    group: GroupSettings,
    integration: bool = True,
) -> dict[str, float]:
    """Embedding metrics on the joint reference + query embedding.

    MAP (K = 1 % of cells) on cell-type labels and the Seurat alignment score
    (k = 1 % of the subsampled cells) as in the Cell BLAST Methods, plus the
    scib-metrics integration metrics when ``integration`` is true.
    """
    from cellquery import metrics as m

    if reference_embedding.shape[1] == 0:  # a predictor without an embedding
        return {}
    X = np.concatenate([reference_embedding, query_embedding]).astype(np.float32)
    label_key = group.label_key
    labels = np.concatenate([reference_obs[label_key].astype(str).to_numpy(), query_obs[label_key].astype(str).to_numpy()])
    batches = mixing_batches(reference_obs, query_obs, group)
    scores = {"map": m.map_from_embedding(X, labels, k_frac=0.01)}
    if len(set(batches)) > 1:
        scores["seurat_alignment"] = m.seurat_alignment_score(X, batches, k_frac=0.01, n_subsamples=1, seed=0)
        if integration:
            scores.update(m.integration_metrics(X, labels, batches))
    return scores
