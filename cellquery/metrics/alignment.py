"""Seurat alignment score (batch mixing).

The Cell BLAST paper (Cao et al. 2020), Methods, "Benchmarking batch-effect
correction" (after Butler et al. 2018): score = 1 - (x̄ - k/N) / (k - k/N),
where x̄ is the mean number of same-batch cells among each cell's k nearest
neighbours after subsampling every batch to the smallest batch's size, and N is
the number of batches. As in the Cell BLAST code, k = round(k_frac * total
subsampled cells) (at least 1) and the score is averaged over repeated
subsamples. The score is 0 for fully separated batches, about 1 for uniform
mixing, and can exceed 1 when neighbours are systematically from other batches.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.metrics._checks import as_embedding, as_labels, check_frac, same_length
from cellquery.metrics._knn import iter_exact_knn


def seurat_alignment_score(
    X, batches, k_frac: float = 0.01, n_subsamples: int = 1, seed: int = 0
) -> float:
    """Seurat alignment score of an embedding.

    Parameters
    ----------
    X
        (n, d) embedding.
    batches
        (n,) batch of each cell; at least two batches.
    k_frac
        k = round(k_frac * subsample size), at least 1; subsample size = number of
        batches * smallest batch size.
    n_subsamples
        Number of random balanced subsamples averaged.
    seed
        Seed of the subsampling (numpy ``default_rng``); batches are visited in
        sorted order, so the result is deterministic.

    Returns
    -------
    float
        Mean score over subsamples.
    """
    X = as_embedding(X)
    b = as_labels(batches, "batches")
    same_length(X.shape[0], b, "batches")
    k_frac = check_frac(k_frac)
    if int(n_subsamples) != n_subsamples or n_subsamples < 1:
        raise InputError(f"n_subsamples: must be a positive integer, got {n_subsamples}")
    codes, uniques = pd.factorize(b, sort=True)
    n_batches = len(uniques)
    if n_batches < 2:
        raise InputError(f"batches: Seurat alignment score needs at least 2 batches, got {n_batches}")
    members = [np.flatnonzero(codes == i) for i in range(n_batches)]
    size = min(len(m) for m in members)
    total = n_batches * size
    k = min(total - 1, max(1, int(round(k_frac * total))))
    rng = np.random.default_rng(seed)
    scores = []
    for _ in range(int(n_subsamples)):
        sub = np.concatenate([np.sort(rng.choice(m, size=size, replace=False)) for m in members])
        sub_codes = codes[sub]
        same = 0
        for start, idx, _ in iter_exact_knn(X[sub], k, exclude_self=True):
            own = sub_codes[start : start + len(idx)]
            same += int((sub_codes[idx] == own[:, None]).sum())
        x_bar = same / total
        expected = k / n_batches
        scores.append(1.0 - (x_bar - expected) / (k - expected))
    return float(np.mean(scores))
