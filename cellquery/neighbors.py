"""scanpy's k-NN graph (``sc.pp.neighbors``) on any number of cells.

From 8,192 cells on (Euclidean metric) scanpy 1.11.5 builds the graph with
pynndescent's ``PyNNDescentTransformer`` and then reads the result with
``getnnz``; pynndescent 0.7.0 returns a ``scipy.sparse.csr_array``, which has
no ``getnnz``, so ``sc.pp.neighbors`` stops with an AttributeError on every
dataset of that size (and with it CellTypist's majority voting, which builds
its over-clustering graph that way). :func:`neighbors` passes scanpy the same
transformer, built with the same settings scanpy would choose, whose output is
converted to a ``csr_matrix``; below 8,192 cells scanpy's own exact path runs
unchanged. Written here because neither package has the fix in the versions
pinned by the project.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

# scanpy 1.11.5 (neighbors/__init__.py, _handle_transformer): below this many cells with the
# Euclidean metric, an exact sklearn KNeighborsTransformer; from it on, pynndescent
SCANPY_DENSE_BELOW = 8192


class CsrMatrixOutput:
    """A k-NN transformer (sklearn API) whose ``fit_transform`` returns a ``csr_matrix``.

    Wraps ``inner`` (e.g. pynndescent's transformer); ``get_params`` and the fitted
    ``index_`` are the inner transformer's, so scanpy reads ``n_neighbors`` and the
    search forest from it as it would from ``inner``.
    """

    def __init__(self, inner):
        self.inner = inner

    def get_params(self, deep: bool = True) -> dict:
        return self.inner.get_params(deep=deep)

    def fit(self, X, y=None):
        self.inner.fit(X)
        return self

    def transform(self, X):
        return sp.csr_matrix(self.inner.transform(X))

    def fit_transform(self, X, y=None):
        return sp.csr_matrix(self.inner.fit_transform(X))

    @property
    def index_(self):
        return getattr(self.inner, "index_", None)


def scanpy_pynndescent(n_obs: int, *, n_neighbors: int, metric: str = "euclidean", random_state=0):
    """The ``PyNNDescentTransformer`` scanpy 1.11.5 builds for ``n_obs`` cells (UMAP's defaults), output as csr_matrix."""
    import scanpy as sc
    from pynndescent import PyNNDescentTransformer

    inner = PyNNDescentTransformer(
        n_neighbors=n_neighbors,
        metric=metric,
        metric_kwds={},
        random_state=random_state,
        n_jobs=sc.settings.n_jobs,
        n_trees=min(64, 5 + round(n_obs**0.5 / 20.0)),
        n_iters=max(5, round(np.log2(n_obs))),
    )
    return CsrMatrixOutput(inner)


def neighbors(adata, *, n_neighbors: int = 15, random_state=0, metric: str = "euclidean", **kwargs) -> None:
    """``sc.pp.neighbors(adata, ...)`` with the graph readable by scanpy at every size (module docstring)."""
    import scanpy as sc

    if "transformer" not in kwargs and adata.n_obs >= SCANPY_DENSE_BELOW and metric == "euclidean":
        kwargs["transformer"] = scanpy_pynndescent(adata.n_obs, n_neighbors=n_neighbors, metric=metric, random_state=random_state)
    sc.pp.neighbors(adata, n_neighbors=n_neighbors, random_state=random_state, metric=metric, **kwargs)
