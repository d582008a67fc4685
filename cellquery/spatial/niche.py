"""Cellular niches: clusters of the neighbourhood composition of (predicted) cell types.

A cell's niche profile is the fraction of each label among itself and its
spatial neighbours (``D^-1 (A + I)`` times the one-hot labels, on a radius
graph of :mod:`cellquery.spatial.graph`); k-means (scikit-learn, seeded) on
the profiles gives ``n_niches`` niches, scored against known regions (the
simulated domains) with the adjusted Rand index. Hand-written because
CellMapper (the mapping tool that names niche identification; 0.2.5 is the
pinned version) ships no niche function. ``n_niches`` is a setting, never
chosen from the regions or the query's labels.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score

from cellquery.errors import InputError
from cellquery.spatial.embed import normalised_adjacency


def neighbourhood_composition(labels, adjacency: sp.spmatrix, include_self: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(cells x labels) fraction of each label in every cell's neighbourhood, and the labels (sorted) as columns."""
    labels = np.asarray(labels).astype(str)
    if adjacency.shape != (len(labels), len(labels)):
        raise InputError(f"adjacency is {adjacency.shape}, expected one row and column per cell ({len(labels)})")
    categories, codes = np.unique(labels, return_inverse=True)
    onehot = sp.csr_matrix((np.ones(len(codes)), (np.arange(len(codes)), codes)), shape=(len(codes), len(categories)))
    composition = normalised_adjacency(adjacency, "mean", self_loops=include_self) @ onehot
    return np.asarray(composition.toarray()), categories


def niche_clusters(labels, adjacency: sp.spmatrix, n_niches: int, *, seed: int = 0, include_self: bool = True) -> np.ndarray:
    """Niche of every cell (0 .. n_niches - 1): k-means of the neighbourhood compositions."""
    if isinstance(n_niches, bool) or not isinstance(n_niches, (int, np.integer)) or n_niches < 1:
        raise InputError(f"n_niches must be an integer >= 1, got {n_niches!r}")
    composition, _ = neighbourhood_composition(labels, adjacency, include_self)
    if n_niches > len(composition):
        raise InputError(f"n_niches ({n_niches}) exceeds the number of cells ({len(composition)})")
    # rounded: profiles equal in exact arithmetic (e.g. every cell of one label: all 1) differ in the last bits
    # after D^-1 (A + I), and k-means would split such cells by round-off alone
    return KMeans(n_clusters=int(n_niches), n_init=10, random_state=seed).fit_predict(np.round(composition, 12))


def niche_ari(niches, regions) -> float:
    """Adjusted Rand index of the niches against known regions (e.g. the simulated domains)."""
    return float(adjusted_rand_score(np.asarray(regions).astype(str), np.asarray(niches)))
