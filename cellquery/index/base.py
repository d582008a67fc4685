"""Base class of the nearest-neighbour index backends, input checks and the file format.

Every backend stores L2 (Euclidean) neighbours of reference rows. The saved file is one
file: a magic line, an 8-byte little-endian header length, a JSON header (backend name,
params, seed, n, dim) and the backend's payload bytes.
"""

from __future__ import annotations

import json
import os
import struct
from typing import IO, Any

import numpy as np

from cellquery.errors import InputError

MAGIC = b"CQINDEX1\n"


def as_matrix(
    X: Any,
    name: str,
    dim: int | None = None,
    allow_empty: bool = False,
    *,
    dtype: type = np.float32,
    context: str | None = "index",
) -> np.ndarray:
    """Return ``X`` as a C-contiguous 2-D array of ``dtype`` after checking it.

    The one validator of numeric matrices (index inputs, embeddings given to metrics).

    Parameters
    ----------
    X
        Array-like of shape (n, d).
    name
        What ``X`` is, for error messages (e.g. ``"reference X"``).
    dim
        Required number of columns, if known.
    allow_empty
        Accept zero rows.
    dtype
        Element type of the result (float32 for indexes, float64 for metrics).
    context
        Prefix of error messages (``"index: reference X is empty"``); None for none.

    Raises
    ------
    InputError
        Not numeric, not 2-D, no rows (unless ``allow_empty``), no columns, wrong
        dimension, NaN or inf values.
    """
    what = f"{context}: {name}" if context else name
    try:
        A = np.ascontiguousarray(X, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{what} is not a numeric matrix ({exc})") from exc
    if A.ndim != 2:
        raise InputError(f"{what} must be 2-D (n, d), got shape {A.shape}")
    if A.shape[0] == 0 and not allow_empty:
        raise InputError(f"{what} is empty (0 rows)")
    if A.shape[1] == 0:
        raise InputError(f"{what} has 0 columns")
    if dim is not None and A.shape[1] != dim:
        raise InputError(f"{what} has dimension {A.shape[1]}, index has dimension {dim}")
    if not np.isfinite(A).all():
        bad = int((~np.isfinite(A).all(axis=1)).sum())
        raise InputError(f"{what} contains NaN or inf values in {bad} row(s)")
    return A


def check_int(v: Any, what: str, lo: int = 1, alternative: str | None = None) -> int:
    """Return ``v`` as an int if it is an integer >= ``lo`` (bools are not), else raise.

    The :class:`InputError` reads ``"{what} must be an integer >= {lo}, got {v!r}"``;
    ``alternative`` names another accepted value the caller handles itself
    (``"... >= 1 or None, got ..."``).
    """
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lo:
        other = f" or {alternative}" if alternative else ""
        raise InputError(f"{what} must be an integer >= {lo}{other}, got {v!r}")
    return int(v)


def check_k(k: Any) -> int:
    """Return ``k`` as a positive int or raise :class:`InputError`."""
    return check_int(k, "index: k")


def check_params(backend: str, params: dict | None, known: dict) -> dict:
    """Merge ``params`` over the defaults ``known``; unknown keys raise :class:`InputError`."""
    params = dict(params or {})
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise InputError(
            f"index: unknown params {unknown} for backend '{backend}'; known: {sorted(known)}"
        )
    return {**known, **params}


def finalize(D: np.ndarray, I: np.ndarray, squared: bool, k: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Convert raw backend output to the common convention.

    Euclidean float32 distances (sqrt of squared ones, negatives from rounding clipped at
    0), int64 ids, ``-1`` / ``inf`` where a row has fewer than k results, rows ascending.
    With ``k``, results narrower than k columns (a backend asked for fewer, e.g. k > n)
    are padded with ``-1`` / ``inf`` to k columns.
    """
    D = np.asarray(D, dtype=np.float32)
    I = np.asarray(I, dtype=np.int64)
    if squared:
        D = np.sqrt(np.maximum(D, 0.0, dtype=np.float32))
    if k is not None and D.shape[1] < k:
        pad = k - D.shape[1]
        D = np.hstack([D, np.full((len(D), pad), np.inf, np.float32)])
        I = np.hstack([I, np.full((len(I), pad), -1, np.int64)])
    missing = I < 0
    if missing.any():
        D = np.where(missing, np.float32(np.inf), D)
        I = np.where(missing, np.int64(-1), I)
    return np.ascontiguousarray(D, dtype=np.float32), np.ascontiguousarray(I, dtype=np.int64)


class Index:
    """Nearest-neighbour index of reference rows (abstract base class).

    Attributes
    ----------
    backend
        Registry name of the backend.
    n
        Number of vectors added (their ids are the running row numbers 0..n-1).
    dim
        Vector dimension.
    params
        Backend params, defaults filled in (and resolved values such as ``nlist``).
    seed
        Seed of every random choice made when building.
    """

    backend: str = ""
    DEFAULTS: dict = {}

    def __init__(self, dim: int, params: dict | None = None, seed: int = 0):
        self.dim = check_int(dim, "index: dimension")
        self.params = check_params(self.backend, params, self.DEFAULTS)
        self.seed = int(seed)
        self.n = 0
        self.is_trained = False

    # -- to implement by backends -------------------------------------------------
    def _train(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def _add(self, X: np.ndarray) -> None:
        raise NotImplementedError

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Search one batch; return (D, I) already in the common convention."""
        raise NotImplementedError

    def _write_payload(self, f: IO[bytes]) -> None:
        raise NotImplementedError

    @classmethod
    def _read_payload(cls, f: IO[bytes], header: dict) -> "Index":
        raise NotImplementedError

    # -- public API -----------------------------------------------------------------
    def train(self, X: np.ndarray) -> None:
        """Fit whatever the backend learns from data (coarse quantiser, codebooks).

        For chunked builds pass a representative sample, then call :meth:`add` per chunk.
        A no-op for backends that need no training.
        """
        if self.is_trained:
            raise InputError(f"index: backend '{self.backend}' is already trained")
        self._train(as_matrix(X, "training X", self.dim))
        self.is_trained = True

    def add(self, X: np.ndarray) -> None:
        """Add vectors; their ids continue the running row number."""
        if not self.is_trained:
            raise InputError(f"index: backend '{self.backend}' must be trained before add")
        A = as_matrix(X, "added X", self.dim, allow_empty=True)
        if A.shape[0] == 0:
            return
        self._add(A)
        self.n += A.shape[0]

    def search(
        self, Q: np.ndarray, k: int, batch_size: int = 10000
    ) -> tuple[np.ndarray, np.ndarray]:
        """Return the k nearest reference rows of every query row.

        Parameters
        ----------
        Q
            Queries, shape (n_q, dim).
        k
            Neighbours per query.
        batch_size
            Queries searched per call of the backend.

        Returns
        -------
        distances
            float32 (n_q, k), Euclidean (not squared), ascending per row; ``inf`` padding.
        indices
            int64 (n_q, k) reference row ids; ``-1`` where fewer than k results.
        """
        k = check_k(k)
        check_int(batch_size, "index: batch_size")
        if not self.is_trained:
            raise InputError(f"index: backend '{self.backend}' is not trained")
        Q = as_matrix(Q, "query Q", self.dim, allow_empty=True)
        D = np.full((Q.shape[0], k), np.inf, dtype=np.float32)
        I = np.full((Q.shape[0], k), -1, dtype=np.int64)
        if self.n == 0:
            return D, I
        for start in range(0, Q.shape[0], int(batch_size)):
            stop = min(start + int(batch_size), Q.shape[0])
            D[start:stop], I[start:stop] = self._search(Q[start:stop], k)
        return D, I

    def save(self, path: str | os.PathLike) -> None:
        """Write the index to one file, readable by :func:`cellquery.index.load_index`."""
        header = {
            "backend": self.backend,
            "params": self.params,
            "seed": self.seed,
            "n": self.n,
            "dim": self.dim,
            "is_trained": self.is_trained,
        }
        blob = json.dumps(header, sort_keys=True).encode()
        with open(path, "wb") as f:
            f.write(MAGIC)
            f.write(struct.pack("<Q", len(blob)))
            f.write(blob)
            self._write_payload(f)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(backend={self.backend!r}, n={self.n}, dim={self.dim}, params={self.params})"


def read_header(f: IO[bytes], path: str | os.PathLike) -> dict:
    """Read and check the header of a saved index file."""
    magic = f.read(len(MAGIC))
    if magic != MAGIC:
        raise InputError(f"{path}: not a cellquery index file (bad magic bytes)")
    (size,) = struct.unpack("<Q", f.read(8))
    try:
        header = json.loads(f.read(size).decode())
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: corrupt index header ({exc})") from exc
    return header


def restore_common(obj: Index, header: dict) -> Index:
    """Set the attributes shared by all backends from a saved header."""
    obj.dim = int(header["dim"])
    obj.params = dict(header["params"])
    obj.seed = int(header["seed"])
    obj.n = int(header["n"])
    obj.is_trained = bool(header["is_trained"])
    return obj
