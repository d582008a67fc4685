"""Score one run's predictions with the metric suite: tidy rows for the summary."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.settings import GroupSettings
from cellquery.summary import SWEEP_COLUMNS, metric_rows
from cellquery.transfer import AMBIGUOUS, REJECTED, sweep_column

# Nominal levels at which the false-rejection rate of P-values and probabilities is measured
CALIBRATION_ALPHAS = (0.01, 0.05, 0.1)
# Points of the accuracy-coverage curve reported beside its area (AURC)
COVERAGES = (0.5, 0.9)


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
    scores.update(rejection_scores(predictions, ref_types))
    if embedding_scores is not None:
        scores.update(dict(zip(embedding_scores["metric"], embedding_scores["value"])))
    return metric_rows(run, scores)


def rejection_scores(predictions: pd.DataFrame, ref_types, alphas=CALIBRATION_ALPHAS) -> dict[str, float]:
    """The run's per-cell ``score`` judged at every threshold at once (:mod:`cellquery.metrics.rejection`).

    ``auroc_unseen``/``auprc_unseen``: the score separating query cells of
    negative (unseen) types from those of positive types (NaN without negative
    types); ``aurc`` and ``accuracy@coverage_<c>``: the accuracy-coverage curve
    of the positive-type cells (a cell is correct when its ``prediction`` is its
    true type), accepted in order of score. Then :func:`calibration_scores`.
    """
    from cellquery import metrics as m

    if "score" not in predictions:
        raise InputError("predictions: no 'score' column (every method writes its per-cell confidence there)")
    true = predictions["true_label"].astype(str).to_numpy()
    correct = predictions["prediction"].astype(str).to_numpy() == true
    positive = np.isin(true, list(ref_types))
    score = predictions["score"].to_numpy(float)
    scores = {
        "auroc_unseen": m.auroc_unseen(score, positive),
        "auprc_unseen": m.auprc_unseen(score, positive),
        "aurc": m.aurc(score[positive], correct[positive]),
    }
    for coverage in COVERAGES:
        scores[f"accuracy@coverage_{coverage:g}"] = m.accuracy_at_coverage(score[positive], correct[positive], coverage)
    scores.update(calibration_scores(predictions, positive, alphas))
    return scores


def calibration_scores(predictions: pd.DataFrame, positive: np.ndarray, alphas=CALIBRATION_ALPHAS) -> dict[str, float]:
    """Does a P-value or probability mean what it says? Realised false rejection at nominal levels, and ECE.

    ``false_rejection@<alpha>``: the fraction of positive-type cells rejected
    at level alpha. A run with a ``p_value`` column rejects at alpha as its own
    rule does at P-value cut-off alpha: its ``sweep_<alpha>`` predictions (NaN
    where the run has no such column; ``rejection_sweep`` lists the levels). A
    run with a class ``probability`` (its top class's) rejects a cell whose
    probability is below 1 - alpha. ``ece``: the expected calibration error of
    ``probability`` on the positive-type cells (10 bins), correct when the top
    class (``top_label``, else ``prediction``) is the true type. Runs with
    neither column get no rows.
    """
    from cellquery import metrics as m

    scores: dict[str, float] = {}
    if "p_value" in predictions:
        for alpha in alphas:
            column = sweep_column(alpha)
            rejected = predictions[column].astype(str).to_numpy() == REJECTED if column in predictions else None
            scores[f"false_rejection@{alpha:g}"] = np.nan if rejected is None else m.false_rejection_rate(rejected, positive)
    elif "probability" in predictions:
        probability = np.clip(predictions["probability"].to_numpy(float), 0.0, 1.0)  # softmax round-off above 1
        for alpha in alphas:
            scores[f"false_rejection@{alpha:g}"] = m.false_rejection_rate(probability < 1.0 - alpha, positive)
        top = predictions["top_label" if "top_label" in predictions else "prediction"].astype(str).to_numpy()
        correct = top == predictions["true_label"].astype(str).to_numpy()
        scores["ece"] = m.expected_calibration_error(probability[positive], correct[positive])
    return scores


def sweep_scores(
    predictions: pd.DataFrame,
    *,
    reference_obs: pd.DataFrame,
    group: GroupSettings,
    run: dict,
    thresholds: list[float] | tuple[float, ...] | None = None,
) -> pd.DataFrame:
    """MBA on positive and negative types at each rejection threshold of a run (Supp. Fig. 9c of Cell BLAST).

    One row per threshold t whose column :func:`cellquery.transfer.sweep_column`
    the run's predictions hold (every one, or those in ``thresholds``), in
    ascending order, and one for the run's own ``prediction`` (threshold NaN),
    with the run's keys in front. A threshold is the method's own: a P-value
    cut-off, 1 - a distance quantile, or a score cut-off of a predictor
    (:data:`cellquery.predictors.SCORE_THRESHOLDS`). MBA is the same
    ontology-aware mean balanced accuracy as in :func:`score_predictions`.
    """
    from cellquery import metrics as m

    ref_types = sorted(set(reference_obs[group.label_key].astype(str)))
    true = predictions["true_label"].astype(str).to_numpy()
    expected = expected_matrix(predictions, reference_obs, group)
    swept = sweep_thresholds(predictions.columns)
    if thresholds is not None:
        swept = {t: c for t, c in swept.items() if any(np.isclose(t, float(x)) for x in thresholds)}
    columns = {float("nan"): "prediction", **swept}
    rows = []
    for threshold, column in columns.items():
        mba = m.mean_balanced_accuracy(true, predictions[column].astype(str).to_numpy(), ref_types, expected=expected)
        rows.append({**run, "threshold": threshold, "mba_positive": mba["positive"], "mba_negative": mba["negative"], "mba": mba["mean"]})
    return pd.DataFrame(rows)[SWEEP_COLUMNS]


def sweep_thresholds(columns) -> dict[float, str]:
    """Threshold -> column of every ``sweep_<t>`` column (:func:`cellquery.transfer.sweep_column`), by threshold."""
    found = {}
    for column in map(str, columns):
        match = re.fullmatch(r"sweep_(.+)", column)
        if match:
            try:
                found[float(match.group(1))] = column
            except ValueError:
                continue
    return dict(sorted(found.items()))


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
    max_cells: int | None = None,
    seed: int = 0,
) -> dict[str, float]:
    """Embedding metrics on the joint reference + query embedding.

    MAP (K = 1 % of cells) on cell-type labels and the Seurat alignment score
    (k = 1 % of the subsampled cells) as in the Cell BLAST Methods, plus the
    scib-metrics integration metrics when ``integration`` is true. Above
    ``max_cells`` joint cells, MAP and Seurat alignment are computed on a
    seeded subsample of ``max_cells`` cells (:mod:`cellquery.metrics.at_scale`);
    ``map_n_cells``, ``map_k``, ``seurat_alignment_n_cells`` and
    ``seurat_alignment_k`` give the cells and K of every value.
    """
    from cellquery import metrics as m
    from cellquery.metrics.at_scale import map_at_scale, seurat_alignment_at_scale

    if reference_embedding.shape[1] == 0:  # a predictor without an embedding
        return {}
    X = np.concatenate([reference_embedding, query_embedding]).astype(np.float32)
    label_key = group.label_key
    labels = np.concatenate([reference_obs[label_key].astype(str).to_numpy(), query_obs[label_key].astype(str).to_numpy()])
    batches = mixing_batches(reference_obs, query_obs, group)
    scores = map_at_scale(X, labels, max_cells=max_cells, seed=seed, k_frac=0.01)
    if len(set(batches)) > 1:
        scores.update(seurat_alignment_at_scale(X, batches, max_cells=max_cells, seed=seed, k_frac=0.01))
        if integration:
            scores.update(m.integration_metrics(X, labels, batches))
    return scores
