"""hnswlib backend: HNSW graph (Malkov & Yashunin 2018), L2 metric."""

from __future__ import annotations

import pickle
from typing import IO

import hnswlib
import numpy as np

from cellquery.index.base import Index, check_int, finalize, restore_common


class HnswlibIndex(Index):
    """hnswlib HNSW index.

    Params
    ------
    M : int, default 16
        Graph degree.
    ef_construction : int, default 200
        Build-time beam width.
    ef : int, default 100
        Search beam width (raised to k when smaller, as hnswlib requires ef >= k).
    n_total : int or None
        Capacity reserved at ``train``; the index grows on ``add`` when exceeded.
    num_threads : int, default 1
        Threads for add/search. hnswlib graphs built with > 1 thread depend on thread
        timing, so the default of 1 keeps builds deterministic; -1 = all cores.
    """

    backend = "hnswlib"
    DEFAULTS = {"M": 16, "ef_construction": 200, "ef": 100, "n_total": None, "num_threads": 1}

    def __init__(self, dim: int, params: dict | None = None, seed: int = 0):
        super().__init__(dim, params, seed)
        for key in ("M", "ef_construction", "ef"):
            check_int(self.params[key], f"index: hnswlib param '{key}'")
        self._index = None

    def _train(self, X: np.ndarray) -> None:
        # Nothing is learnt from data; reserve capacity for the expected rows.
        p = self.params
        self._index = hnswlib.Index(space="l2", dim=self.dim)
        self._index.init_index(
            max_elements=int(p["n_total"] or X.shape[0]),
            M=int(p["M"]),
            ef_construction=int(p["ef_construction"]),
            random_seed=self.seed,
        )

    def _add(self, X: np.ndarray) -> None:
        need = self.n + X.shape[0]
        if need > self._index.get_max_elements():
            self._index.resize_index(max(need, 2 * self._index.get_max_elements()))
        ids = np.arange(self.n, need, dtype=np.int64)
        self._index.add_items(X, ids, num_threads=int(self.params["num_threads"]))

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        k_eff = min(k, self.n)  # hnswlib raises when it cannot return k results
        self._index.set_ef(max(int(self.params["ef"]), k_eff))
        I, D = self._index.knn_query(Q, k=k_eff, num_threads=int(self.params["num_threads"]))
        return finalize(D, I.astype(np.int64), squared=True, k=k)  # hnswlib 'l2' is squared

    def _write_payload(self, f: IO[bytes]) -> None:
        if self._index is not None:
            pickle.dump(self._index, f, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def _read_payload(cls, f: IO[bytes], header: dict) -> "HnswlibIndex":
        obj = cls.__new__(cls)
        restore_common(obj, header)
        obj._index = pickle.load(f) if header["is_trained"] else None
        return obj
