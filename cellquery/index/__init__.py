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

import importlib
import os
from collections.abc import Mapping

import numpy as np

from cellquery.errors import InputError
from cellquery.index.base import Index, as_matrix, read_header
from cellquery.index.merge import merge_topk, split_shards

class _Registry(Mapping):
    """Backend name -> Index class, imported on first use (graph libraries are slow to import)."""

    def __init__(self, entries: dict[str, str]):
        self._entries = entries
        self._loaded: dict[str, type[Index]] = {}

    def __getitem__(self, name: str) -> type[Index]:
        if name not in self._loaded:
            module, cls = self._entries[name].split(":")
            try:
                self._loaded[name] = getattr(importlib.import_module(module), cls)
            except ImportError as err:
                raise InputError(f"index: backend {name!r} cannot be imported ({err})") from err
        return self._loaded[name]

    def __iter__(self):
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


BACKENDS: Mapping[str, type[Index]] = _Registry(
    {
        "faiss": "cellquery.index.faiss_backend:FaissIndex",
        "hnswlib": "cellquery.index.hnswlib_backend:HnswlibIndex",
        "pynndescent": "cellquery.index.pynndescent_backend:PynndescentIndex",
        "gemm": "cellquery.index.gemm_backend:GemmIndex",
    }
)

__all__ = ["BACKENDS", "Index", "build_index", "load_index", "make_index", "merge_topk", "split_shards"]


def make_index(backend: str, dim: int, params: dict | None = None, seed: int = 0) -> Index:
    """Create an empty, untrained index (for chunked builds: ``train`` then ``add`` per chunk)."""
    if backend not in BACKENDS:
        raise InputError(f"index: unknown backend '{backend}'; known: {sorted(BACKENDS)}")
    return BACKENDS[backend](dim, params, seed)


def build_index(backend: str, X: np.ndarray, params: dict | None = None, seed: int = 0) -> Index:
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

    Raises
    ------
    InputError
        Unknown backend, empty X, NaN/inf in X, bad params or factory string.
    """
    if backend not in BACKENDS:
        raise InputError(f"index: unknown backend '{backend}'; known: {sorted(BACKENDS)}")
    X = as_matrix(X, "reference X")
    index = make_index(backend, X.shape[1], params, seed)
    index.train(X)
    index.add(X)
    return index


def load_index(path: str | os.PathLike) -> Index:
    """Read an index written by :meth:`Index.save`."""
    if not os.path.exists(path):
        raise InputError(f"{path}: index file does not exist")
    with open(path, "rb") as f:
        header = read_header(f, path)
        backend = header.get("backend")
        if backend not in BACKENDS:
            raise InputError(f"{path}: unknown backend '{backend}'; known: {sorted(BACKENDS)}")
        return BACKENDS[backend]._read_payload(f, header)
