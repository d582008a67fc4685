"""Presence scores: how well the reference is represented in the query, and the query in the reference.

CellMapper (quadbio/cellmapper ``compute_presence_score``, adapted from
HNOCA-tools) scores each *reference* cell by the column sums of the
query-to-reference k-NN connectivities, clips them to their 1st-99th
percentile and min-max scales them to [0, 1] (:func:`scaled_presence`):
reference cells that many query cells map to score high, reference
populations absent from the query score low.

The project's own scores come from the mapping matrix M of a transfer
(n_query x n_reference, rows the normalised vote weights of the counted hits,
:func:`cellquery.transfer.kernel.mapping_matrix`; ``Y_query = M . Y_reference``):

* :func:`reference_presence`: the reference's presence in the query, the
  scaled column sums of M (CellMapper's definition on the project's M);
* :func:`mapped_presence`: that score carried back to the query cells,
  ``M . presence`` (as CellMapper's predictor writes it per query cell);
* :func:`query_presence`: the query's presence in the reference, the same
  definition with the roles swapped: each reference cell's ``k`` nearest query
  cells, Gaussian-kernel weights with the adaptive bandwidth of
  :mod:`cellquery.transfer.kernel`, rows normalised, scaled column sums. A
  query population the reference lacks is rarely among any reference cell's
  nearest query cells and scores low.

A presence score is judged as a detector of negative (held-out) types: the
AUROC of the per-query-cell score for telling positive-type from
negative-type cells (:func:`cellquery.metrics.auroc_unseen`).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from cellquery.transfer.kernel import mapping_matrix
from cellquery.transfer.kernel import weights as kernel_weights

PERCENTILES = (1, 99)
# CellMapper's default number of neighbours (cellmapper 0.2.5, model/cellmapper.py)
QUERY_PRESENCE_K = 30


def scaled_presence(raw, percentile: tuple[float, float] = PERCENTILES) -> np.ndarray:
    """Clip to the ``percentile`` range and min-max scale to [0, 1] (all 0 when constant), as CellMapper does."""
    raw = np.asarray(raw, dtype=np.float64).ravel()
    if raw.size == 0:
        return raw
    low, high = np.percentile(raw, percentile)
    clipped = np.clip(raw, low, high)
    span = clipped.max() - clipped.min()
    return (clipped - clipped.min()) / span if span > 0 else np.zeros_like(clipped)


def row_normalised(M: sp.spmatrix) -> sp.csr_matrix:
    """M with each non-empty row scaled to sum 1."""
    M = sp.csr_matrix(M, dtype=np.float64)
    total = np.asarray(M.sum(axis=1)).ravel()
    return sp.diags(np.divide(1.0, total, out=np.zeros_like(total), where=total > 0)) @ M


def reference_presence(M: sp.spmatrix) -> np.ndarray:
    """Presence of each reference cell in the query: scaled column sums of the row-normalised M."""
    return scaled_presence(np.asarray(row_normalised(M).sum(axis=0)).ravel())


def mapped_presence(M: sp.spmatrix, presence: np.ndarray | None = None) -> np.ndarray:
    """Per query cell: ``M . presence`` with M's rows normalised (the reference presence of M by default; 0 without hits)."""
    M = row_normalised(M)
    if presence is None:
        presence = reference_presence(M)
    return np.asarray(M @ np.asarray(presence, dtype=np.float64)).ravel()


def hit_mapping_matrix(codes, mask, distances, indices, label_frequency, n_reference, voter, voter_params=None):
    """The mapping matrix M of a transfer: its voter's weights of the counted hits (``mask``), rows normalised."""
    from cellquery.transfer import VOTERS

    w = VOTERS[voter](codes, mask, distances, label_frequency, **(voter_params or {}))
    w = np.where(mask & (indices >= 0), w, 0.0)
    return row_normalised(mapping_matrix(indices, w, n_reference))


def query_presence(reference: np.ndarray, query: np.ndarray, k: int = QUERY_PRESENCE_K) -> np.ndarray:
    """Presence of each query cell in the reference (module docstring); exact Euclidean k-NN (sklearn)."""
    from sklearn.neighbors import NearestNeighbors

    reference = np.asarray(reference, dtype=np.float64)
    query = np.asarray(query, dtype=np.float64)
    k = min(k, len(query))
    distances, indices = NearestNeighbors(n_neighbors=k).fit(query).kneighbors(reference)
    mask = np.ones_like(indices, dtype=bool)
    w = kernel_weights(np.zeros_like(indices), mask, distances, np.ones(1))
    reverse = mapping_matrix(indices, w, len(query))  # n_reference x n_query, rows sum to 1
    return scaled_presence(np.asarray(reverse.sum(axis=0)).ravel())


def transfer_presence(reference_labels, distances, indices, mask, voter: str = "majority", voter_params=None) -> np.ndarray:
    """Per query cell, :func:`mapped_presence` of a transfer's M (its voter's weights of the hits set in ``mask``)."""
    return mapped_presence(transfer_mapping(reference_labels, distances, indices, mask, voter, voter_params))


def transfer_mapping(reference_labels, distances, indices, mask, voter: str = "majority", voter_params=None) -> sp.csr_matrix:
    """A transfer's mapping matrix M (query x reference): its voter's weights of the hits set in ``mask``, rows normalised."""
    labels, codes_ref = np.unique(np.asarray(reference_labels, dtype=str), return_inverse=True)
    frequency = np.bincount(codes_ref, minlength=len(labels)) / max(len(codes_ref), 1)
    indices = np.asarray(indices)
    counted = np.asarray(mask, dtype=bool) & (indices >= 0) & np.isfinite(distances)
    codes = codes_ref[np.where(indices >= 0, indices, 0)]
    return hit_mapping_matrix(codes, counted, distances, indices, frequency, len(codes_ref), voter, voter_params)


def presence_auroc(true_labels, reference_types, presence) -> float:
    """AUROC of a per-query-cell presence score for telling positive-type from negative-type cells (NaN without both)."""
    from cellquery.metrics.rejection import auroc_unseen

    positive = np.isin(np.asarray(true_labels, dtype=str), np.asarray(list(reference_types), dtype=str))
    return auroc_unseen(np.nan_to_num(np.asarray(presence, dtype=np.float64), nan=0.0), positive)
