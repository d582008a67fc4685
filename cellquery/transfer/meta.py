"""Transfer from an index of meta cells (config ``indexes.<name>.reduce``, :mod:`cellquery.index.reduce`).

The index holds meta cells, not reference cells: a query cell's hits are its
nearest meta cells and each counted hit adds its meta cell's members' label
distribution to the votes (:func:`cellquery.index.reduce.meta_vote`). Hits
count when they lie within the ``distance_quantile`` of the distances from
reference cells to their own nearest meta cells (the hits a query cell would
get if it were a reference cell), so the cut-off, like the unreduced
transfers', is set from the reference alone. The mapping matrix M is query x
reference: a hit's weight is split evenly among its meta cell's members.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellquery.errors import InputError
from cellquery.index.reduce import MetaCells, meta_vote, membership_matrix
from cellquery.settings import GroupSettings, TransferSettings
from cellquery.transfer import label_to_term, prediction_table, sweep_column
from cellquery.transfer.acceptance import distance_cutoff
from cellquery.transfer.presence import mapped_presence


def meta_mapping(distances, indices, cutoff: float, meta: MetaCells) -> sp.csr_matrix:
    """M (query x reference): each counted hit's equal weight spread over its meta cell's members; rows sum to 1 or 0."""
    valid = (np.asarray(distances) <= cutoff) & (indices >= 0)
    counted = valid.sum(axis=1)
    rows = np.broadcast_to(np.arange(len(indices))[:, None], indices.shape)[valid]
    weights = np.broadcast_to(1.0 / np.maximum(counted, 1)[:, None], indices.shape)[valid]
    to_meta = sp.csr_matrix((weights, (rows, indices[valid])), shape=(len(indices), meta.n))
    return (to_meta @ membership_matrix(meta)).tocsr()


def meta_predictions(meta: MetaCells, fate_keys, distances, indices, self_distances, settings: TransferSettings,
                     sweep=()) -> pd.DataFrame:
    """Per query cell: ``prediction``, ``n_hits``, ``top_fraction``, ``score``, ``presence_score``, fates, sweep columns.

    The mapping matrix M is left in ``attrs["mapping"]``.
    """
    if settings.significance is not None or settings.conformal is not None or settings.voter != "majority":
        raise InputError("transfer: an index of meta cells supports distance cut-off transfers with the majority voter only")
    if settings.needs_tuning:
        raise InputError(f"transfer: {', '.join(settings.auto_keys)} is 'auto'; resolve it from the tuning file first")
    distances, indices = np.asarray(distances, dtype=np.float64), np.asarray(indices)
    distances = np.where(indices >= 0, distances, np.inf)
    cutoff = distance_cutoff(self_distances, settings.distance_quantile)
    vote = dict(min_hits=settings.min_hits, min_fraction=settings.min_fraction)
    prediction, share, fates = meta_vote(distances, indices, meta, cutoff=cutoff, **vote)
    n_hits = ((distances <= cutoff) & (indices >= 0)).sum(axis=1)
    present = (indices >= 0).sum(axis=1)
    predicted = pd.DataFrame({"prediction": prediction, "n_hits": n_hits, "top_fraction": share})
    if fate_keys and fates is not None:
        for j, key in enumerate(fate_keys):
            predicted[f"pred_{key}"] = fates[:, j]
    mapping = meta_mapping(distances, indices, cutoff, meta)
    predicted["presence_score"] = mapped_presence(mapping)
    # as cellquery.transfer.acceptance.cell_scores for distance cut-offs
    predicted["score"] = share * np.divide(n_hits, present, out=np.zeros(len(present)), where=present > 0)
    for t in sweep:
        predicted[sweep_column(t)] = meta_vote(distances, indices, meta, cutoff=distance_cutoff(self_distances, 1.0 - t), **vote)[0]
    predicted.attrs["mapping"] = mapping
    return predicted


def meta_predict_table(*, meta: MetaCells, fate_keys, reference_obs: pd.DataFrame, query_obs: pd.DataFrame, distances,
                       indices, self_distances, group: GroupSettings, settings: TransferSettings, sweep=()):
    """(predictions table of :func:`cellquery.transfer.predict_table`, mapping matrix M) for an index of meta cells."""
    if len(indices) != len(query_obs):
        raise InputError(f"hits: {len(indices)} rows but the query has {len(query_obs)} cells")
    if len(meta.assignment) != len(reference_obs):
        raise InputError("transfer: the meta cells were built for another reference (rebuild the index)")
    missing = set(group.continuous_keys) - set(fate_keys)
    if missing:
        raise InputError(f"transfer: the meta cells carry no fates {sorted(missing)} (rebuild the index)")
    predicted = meta_predictions(meta, fate_keys, distances, indices, self_distances, settings, sweep)
    mapping = predicted.attrs.pop("mapping")
    to_term = label_to_term(reference_obs, group.label_key, group.ontology_key) if group.ontology_key else None
    return prediction_table(query_obs, group, predicted, to_term), mapping
