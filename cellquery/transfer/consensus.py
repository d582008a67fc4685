"""Significance by consensus of several models (Cell BLAST's multi-model trick).

Cell BLAST (Methods, "Cell querying using posterior distance") trains several
models from different random starting points and counts a hit only when it is
significant in most of them: cells of types a model never saw land near
reference cells by chance, and by different chance in each model.

Here each model is one embedding of reference and query (with its own
calibration). The candidate hits of a query cell are the union of every
model's hits; each candidate gets a P-value in every model (its distance is
computed in that model's embedding) and counts when it is significant in a
strict majority of the models. With one model this is the single-model rule.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from cellquery.errors import InputError
from cellquery.transfer.calibration import Calibration, exact_distances, p_values


@dataclass
class Model:
    """One model's view of a run: embeddings, its index hits and its calibration."""

    reference: np.ndarray
    query: np.ndarray
    indices: np.ndarray
    calibration: Calibration


def candidate_hits(models: list[Model]) -> np.ndarray:
    """Union of the models' hit lists per query cell (first occurrence kept, repeats set to -1)."""
    merged = np.concatenate([m.indices for m in models], axis=1)
    order = np.argsort(merged, axis=1, kind="stable")
    sorted_ids = np.take_along_axis(merged, order, axis=1)
    repeat = np.zeros_like(merged, dtype=bool)
    repeat_sorted = np.zeros_like(sorted_ids, dtype=bool)
    repeat_sorted[:, 1:] = sorted_ids[:, 1:] == sorted_ids[:, :-1]
    np.put_along_axis(repeat, order, repeat_sorted, axis=1)
    return np.where(repeat, -1, merged)


def significant_by_consensus(models: list[Model], *, p_cutoff: float = 0.05):
    """Candidate hits, their distances in the first model, P-values per model and the consensus mask.

    Returns ``(distances, indices, mask, p)``: ``distances`` are exact
    distances in the first model's embedding, ``p`` has shape
    (n_models, n_query, n_candidates) and ``mask`` is true where a strict
    majority of models finds the hit significant (P < ``p_cutoff``).
    """
    if not models:
        raise InputError("consensus: at least one model is needed")
    n_query = {len(m.query) for m in models}
    if len(n_query) != 1:
        raise InputError(f"consensus: the models embed different numbers of query cells {sorted(n_query)}")
    indices = candidate_hits(models)
    p = np.empty((len(models), *indices.shape))
    first_distances = None
    for j, model in enumerate(models):
        d = exact_distances(model.query, model.reference, indices)
        p[j] = p_values(d, indices, model.calibration)
        if j == 0:
            first_distances = d
    return first_distances, indices, significant_mask(p, indices, p_cutoff), p


def significant_mask(p: np.ndarray, indices: np.ndarray, p_cutoff: float) -> np.ndarray:
    """Hits significant (P < ``p_cutoff``) in a strict majority of the models; ``p`` is (n_models, n_query, n)."""
    votes = (p < p_cutoff).sum(axis=0)
    return (votes * 2 > len(p)) & (indices >= 0)
