"""scIB integration metrics on a joint (reference + query) embedding, via scib-metrics.

Neighbour graphs follow ``scib_metrics.benchmark.Benchmarker``: one exact k-NN
search with ``n_neighbors`` neighbours (self included, Euclidean distances), of
which the first 90 feed iLISI/cLISI, the first 50 kBET and the first 15 graph
connectivity (each capped at ``n_neighbors``). Silhouettes use the embedding
itself. Only the neighbour search is done here (exact,
:mod:`cellquery.metrics._knn`); the metrics are scib-metrics'.

kBET is ``scib_metrics.kbet``: the acceptance rate of the chi-square test of each
cell's neighbourhood batch composition against the global one, over all cells.
It also reflects differences in cell-type composition between batches.
scib-metrics' per-label variant (``kbet_per_label``, used by its Benchmarker) is
not used: its diffusion-map neighbours go through pynndescent/UMAP and cost about
a minute of numba compilation in every fresh process (measured at 5,000 cells).
scib-metrics imports JAX, so it is imported inside the function.

JAX compiles each metric anew in every process (about 12 of the 22 s of one
call at 6,000 cells). :func:`use_compilation_cache` points JAX's persistent
compilation cache at a directory shared by the workflow's jobs, so that only
the first job pays for it (the cached compilations give the same numbers).
"""

from __future__ import annotations

import numpy as np

from cellquery.errors import InputError
from cellquery.metrics._checks import as_embedding, as_labels, same_length
from cellquery.metrics._knn import exact_knn

_K_LISI, _K_KBET, _K_GRAPH = 90, 50, 15


def use_compilation_cache(path, max_bytes: int = 2**30) -> None:
    """Keep JAX's compiled metric kernels in ``path`` for later processes (every size, every compile time).

    A size limit turns on JAX's file lock, so that concurrent jobs never read a
    half-written entry.
    """
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    jax.config.update("jax_compilation_cache_max_size", int(max_bytes))


def integration_metrics(X, labels, batches, n_neighbors: int = 90) -> dict[str, float]:
    """iLISI, cLISI, silhouette (label, batch), graph connectivity and kBET.

    Parameters
    ----------
    X
        (n, d) joint embedding.
    labels
        (n,) cell types (at least 2).
    batches
        (n,) batches, e.g. dataset or reference/query (at least 2).
    n_neighbors
        Neighbours (self included) of the k-NN graph; capped at n.

    Returns
    -------
    dict
        ``ilisi``, ``clisi``, ``silhouette_label``, ``silhouette_batch``,
        ``graph_connectivity``, ``kbet``; all scaled by scib-metrics so that
        higher is better, in [0, 1]. ``silhouette_batch`` is NaN when no cell
        type occurs in two batches.

    Notes
    -----
    Silhouettes are O(n^2) time (chunked, O(n) memory) in scib-metrics;
    subsample very large embeddings before calling.
    """
    X = as_embedding(X)
    y = as_labels(labels, "labels")
    b = as_labels(batches, "batches")
    same_length(X.shape[0], y, "labels")
    same_length(X.shape[0], b, "batches")
    n = X.shape[0]
    if int(n_neighbors) != n_neighbors or n_neighbors < 2:
        raise InputError(f"n_neighbors: must be an integer >= 2, got {n_neighbors}")
    y = y.astype(str)
    b = b.astype(str)
    if len(np.unique(y)) < 2:
        raise InputError("labels: integration metrics need at least 2 cell types")
    if len(np.unique(b)) < 2:
        raise InputError("batches: integration metrics need at least 2 batches")
    k = min(int(n_neighbors), n)
    if k < 2:
        raise InputError(f"X: too few cells ({n}) for a neighbour graph")

    import scib_metrics
    from scib_metrics.nearest_neighbors import NeighborsResults

    idx, dist = exact_knn(X, k, exclude_self=False)
    nn = NeighborsResults(indices=idx, distances=dist.astype(np.float32))
    Xf = X.astype(np.float32)
    # silhouette_batch needs a cell type with >= 2 batches and fewer batches than cells
    mixed = any(
        1 < len(np.unique(b[y == t])) < int((y == t).sum()) for t in np.unique(y)
    )
    return {
        "ilisi": float(scib_metrics.ilisi_knn(nn.subset_neighbors(min(_K_LISI, k)), b)),
        "clisi": float(scib_metrics.clisi_knn(nn.subset_neighbors(min(_K_LISI, k)), y)),
        "silhouette_label": float(scib_metrics.silhouette_label(Xf, y)),
        "silhouette_batch": float(scib_metrics.silhouette_batch(Xf, y, b)) if mixed else float("nan"),
        "graph_connectivity": float(scib_metrics.graph_connectivity(nn.subset_neighbors(min(_K_GRAPH, k)), y)),
        "kbet": float(scib_metrics.kbet(nn.subset_neighbors(min(_K_KBET, k)), b)[0]),
    }
