"""Score one run's predictions with the metric suite: tidy rows for the summary."""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.summary import metric_rows
from cellquery.transfer import AMBIGUOUS, REJECTED


def expected_matrix(predictions: pd.DataFrame, reference_obs: pd.DataFrame, group: dict):
    """The group's expected-prediction matrix: its CSV, else derived from the Cell Ontology, else None."""
    from cellquery.metrics import expected_from_csv, expected_from_ontology
    from cellquery.ontology import load_cell_ontology

    if group.get("expected"):
        return expected_from_csv(group["expected"])
    ontology_key = group.get("ontology_key")
    if not ontology_key:
        return None
    label_key = group["label_key"]
    type_to_cl = dict(zip(predictions["true_label"], predictions["true_cl"]))
    type_to_cl.update(dict(zip(reference_obs[label_key].astype(str), reference_obs[ontology_key].astype(str))))
    ref_types = sorted(set(reference_obs[label_key].astype(str)))
    return expected_from_ontology(sorted(set(predictions["true_label"])), ref_types, type_to_cl, load_cell_ontology())


def score_predictions(predictions: pd.DataFrame, *, reference_obs: pd.DataFrame, group: dict, run: dict) -> pd.DataFrame:
    """All metrics of one (group, method, index, transfer, seed) run as tidy summary rows."""
    from cellquery import metrics as m

    label_key = group["label_key"]
    ref_types = sorted(set(reference_obs[label_key].astype(str)))
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
    keys = list(group.get("continuous_keys", []))
    if keys:
        true_fates = predictions[[f"true_{k}" for k in keys]].to_numpy(float)
        pred_fates = predictions[[f"pred_{k}" for k in keys]].to_numpy(float)
        made = ~np.isnan(pred_fates).any(axis=1)
        # JSD over the cells that received a fate prediction (rejected cells get none).
        scores["jsd"] = float(np.mean(m.jensen_shannon_divergence(true_fates[made], pred_fates[made]))) if made.any() else np.nan
    if group.get("ontology_key"):
        from cellquery.ontology import load_cell_ontology

        ontology = load_cell_ontology()
        ref_cls = sorted(set(reference_obs[group["ontology_key"]].astype(str)))
        true_cl = predictions["true_cl"].astype(str).to_numpy()
        pred_cl = predictions["pred_cl"].astype(str).to_numpy()
        per_term = m.cl_accuracy(true_cl, pred_cl, ref_cls, ontology)
        scores["cl_accuracy"] = float(np.average(per_term["accuracy"], weights=per_term["n_cells"]))
        scores["cl_mba"] = m.cl_mba(true_cl, pred_cl, ref_cls, ontology)
    return metric_rows(run, scores)
