"""Nearest-neighbour indexes of reference embeddings behind one interface.

One file per backend; adding a backend = adding a file + one line in ``BACKENDS``
(imported on first use).
All backends use the Euclidean (L2) metric and return Euclidean (not squared) distances.

Examples
--------
>>> idx = build_index("faiss", X, {"factory": "IVF{nlist},Flat", "nprobe": 16})
>>> D, I = idx.search(Q, k=50)
>>> idx.save("ref.cqindex"); idx2 = load_index("ref.cqindex")
"""

from __future__ import annotations

import os

import numpy as np

from cellquery.errors import InputError
from cellquery.progress import Progress
from cellquery.index.base import Index, as_matrix, read_header
from cellquery.index.merge import merge_topk, split_shards
from cellquery.registry import Registry

# Backend name -> Index class, imported on first use (graph libraries are slow to import).
BACKENDS = Registry(
    "index backend",
    "indexes.<name>.backend",
    {
        "faiss": "cellquery.index.faiss_backend:FaissIndex",
        "hnswlib": "cellquery.index.hnswlib_backend:HnswlibIndex",
        "pynndescent": "cellquery.index.pynndescent_backend:PynndescentIndex",
        "gemm": "cellquery.index.gemm_backend:GemmIndex",
        "ivf_gemm": "cellquery.index.ivf_gemm_backend:IvfGemmIndex",
    },
)

__all__ = ["BACKENDS", "Index", "build_index", "load_index", "make_index", "merge_topk", "split_shards"]


def _backend(name: str, where: str = "index") -> type[Index]:
    """The Index class registered as ``name``; ``where`` starts the error message."""
    if name not in BACKENDS:
        raise InputError(f"{where}: unknown backend '{name}'; known: {sorted(BACKENDS)}")
    return BACKENDS[name]


def make_index(backend: str, dim: int, params: dict | None = None, seed: int = 0) -> Index:
    """Create an empty, untrained index (for chunked builds: ``train`` then ``add`` per chunk)."""
    return _backend(backend)(dim, params, seed)


# rows per add() of build_index: a reference above it is added in chunks, with progress lines in the job's log
ADD_CHUNK = 500_000


def build_index(backend: str, X: np.ndarray, params: dict | None = None, seed: int = 0,
                add_chunk: int | None = None) -> Index:
    """Build an index of the rows of ``X`` (ids 0..n-1): train on ``X``, then add it.

    Parameters
    ----------
    backend
        Name in :data:`BACKENDS`.
    X
        Reference vectors (n, d); converted to C-contiguous float32.
    params
        Backend params (see the backend class docstring); unknown keys raise.
    seed
        Seed of all random choices (training subsample, k-means, graph construction).
    add_chunk
        Rows per ``add`` (default :data:`ADD_CHUNK`); after each chunk a progress
        line (cells added, elapsed, ETA) goes to the job's log (:mod:`cellquery.progress`).
        A reference of at most this many rows is added in one call.

    Raises
    ------
    InputError
        Unknown backend, empty X, NaN/inf in X, bad params or factory string.
    """
    _backend(backend)  # an unknown name is reported before the data are checked
    X = as_matrix(X, "reference X")
    index = make_index(backend, X.shape[1], params, seed)
    index.train(X)
    chunk = ADD_CHUNK if add_chunk is None else int(add_chunk)
    if chunk < 1:
        raise InputError(f"index: add_chunk must be >= 1, got {add_chunk!r}")
    counter = Progress(f"index build ({backend}, {X.shape[0]} cells)", X.shape[0], "cells added")
    for start in range(0, X.shape[0], chunk):
        index.add(X[start : start + chunk])
        counter.update(min(chunk, X.shape[0] - start))
    return index


def load_index(path: str | os.PathLike) -> Index:
    """Read an index written by :meth:`Index.save`."""
    if not os.path.exists(path):
        raise InputError(f"{path}: index file does not exist")
    with open(path, "rb") as f:
        header = read_header(f, path)
        return _backend(header.get("backend"), str(path))._read_payload(f, header)
