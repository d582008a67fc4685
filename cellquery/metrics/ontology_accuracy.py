"""Ontology-aware accuracy of Cell Ontology (CL) predictions: CL accuracy and CL MBA.

The Cell BLAST paper (Cao et al. 2020), Methods, "Cell Ontology inference". With ≼
"is a descendant of or equal to" and ∇c = {c' : c' ≼ c} (c included):

* a query term c_i is positive when c_i ≼ r or r ≼ c_i for some reference term r,
  negative otherwise;
* for a positive c_i predicted as c_j:
  1 if c_j ≼ c_i (the true term or a descendant of it);
  (1/|C_I|) Σ_{c_k ∈ C_I} |∇c_k| / |∇c_j| if c_i ≺ c_j (an ancestor), with
  C_I = {c_k : c_i ≼ c_k ≼ c_j, r ≼ c_k for some reference term r}
  (the intermediate terms, both ends included, inferable from the reference);
  0 otherwise (unrelated term, "ambiguous", "rejected", ...);
* for a negative c_i: 1 when the cell is rejected ("rejected" or "unassigned"),
  else 0.

Per-cell scores are averaged per true term; CL MBA is the mean over terms.

Choices where the paper is silent: |∇c| counts descendants in the whole ontology
given (not only terms seen in the data), using its mixed is_a/part_of links; an
ancestor prediction with an empty C_I (no term between c_i and c_j has a
reference descendant, only possible for predictions not derived from the
reference) scores 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.metrics._pairs import check_query, count_pairs
from cellquery.ontology import Ontology

REJECTED_LABELS = frozenset({"rejected", "unassigned"})
NON_TERM_LABELS = REJECTED_LABELS | {"ambiguous"}

__all__ = ["cl_accuracy", "cl_mba", "REJECTED_LABELS"]


def _is_positive(term: str, refs: frozenset, onto: Ontology) -> bool:
    if term in refs:
        return True
    return bool(refs & onto.ancestors(term)) or bool(refs & onto.descendants(term))


def _inferable(term: str, refs: frozenset, onto: Ontology) -> bool:
    # C_ref ≼ c_k: some reference term is c_k or one of its descendants
    return term in refs or bool(refs & onto.descendants(term))


def _pair_score(ci: str, cj: str, refs: frozenset, positive: bool, onto: Ontology) -> float:
    if not positive:
        return 1.0 if cj in REJECTED_LABELS else 0.0
    if cj in NON_TERM_LABELS:
        return 0.0
    if cj == ci or onto.is_ancestor(ci, cj):  # c_j ≼ c_i
        return 1.0
    if onto.is_ancestor(cj, ci):  # c_i ≺ c_j
        # C_I = {c_k : c_i ≼ c_k ≼ c_j}: c_i, c_j and c_j's descendants among c_i's ancestors
        between = {ci, cj} | (onto.ancestors(ci) & onto.descendants(cj))
        ci_set = [ck for ck in between if _inferable(ck, refs, onto)]
        if not ci_set:
            return 0.0
        denom = onto.n_descendants(cj)
        return float(np.mean([onto.n_descendants(ck) / denom for ck in sorted(ci_set)]))
    return 0.0


def cl_accuracy(true_cl, pred_cl, ref_cls, ontology: Ontology) -> pd.DataFrame:
    """CL accuracy per true term.

    Parameters
    ----------
    true_cl
        (n,) true CL term ids of the query cells.
    pred_cl
        (n,) predicted CL term ids, or ``"rejected"``, ``"unassigned"``,
        ``"ambiguous"``.
    ref_cls
        CL terms present in the reference.
    ontology
        :class:`~cellquery.ontology.Ontology` (e.g. ``load_cell_ontology()``).

    Returns
    -------
    pandas.DataFrame
        Columns ``term``, ``n_cells``, ``accuracy`` (mean per-cell score),
        ``positive``; sorted by term.
    """
    t, p, refs = check_query(true_cl, pred_cl, ref_cls, ("true_cl", "pred_cl", "ref_cls"))
    for r in sorted(refs):
        ontology.check(r, field="ref_cls term")
    pairs = count_pairs(t, p, "term")
    positive = {}
    for term in pairs["term"].unique():
        ontology.check(term, field="true_cl term")
        positive[term] = _is_positive(term, refs, ontology)
    for pred in pairs["pred"].unique():
        if pred not in NON_TERM_LABELS:
            ontology.check(pred, field="pred_cl term")
    pairs["score"] = [
        _pair_score(ti, pj, refs, positive[ti], ontology) for ti, pj in zip(pairs["term"], pairs["pred"])
    ]
    pairs["weighted"] = pairs["score"] * pairs["n"]
    out = pairs.groupby("term", sort=True).agg(n_cells=("n", "sum"), total=("weighted", "sum")).reset_index()
    out["accuracy"] = out["total"] / out["n_cells"]
    out["positive"] = out["term"].map(positive).astype(bool)
    out["n_cells"] = out["n_cells"].astype(np.int64)
    return out[["term", "n_cells", "accuracy", "positive"]]


def cl_mba(true_cl, pred_cl, ref_cls, ontology: Ontology) -> float:
    """CL MBA: unweighted mean of :func:`cl_accuracy` over true terms."""
    return float(cl_accuracy(true_cl, pred_cl, ref_cls, ontology)["accuracy"].mean())
