"""pynndescent backend: NN-descent k-NN graph (Dong et al. 2011) searched by graph walk."""

from __future__ import annotations

import pickle
from typing import IO

import numpy as np
import pynndescent

from cellquery.index.base import Index, check_int, finalize, restore_common


class PynndescentIndex(Index):
    """pynndescent ``NNDescent`` index, Euclidean metric.

    The graph is built over all added rows at the first search (NN-descent has no
    incremental add); ``add`` only collects rows, so chunked builds hold all rows in memory.

    Params
    ------
    n_neighbors : int, default 30
        Degree of the k-NN graph.
    epsilon : float, default 0.1
        Search slack (larger = more accurate, slower).
    n_jobs : int or None, default None
        Threads (numba); None = pynndescent default.
    """

    backend = "pynndescent"
    DEFAULTS = {"n_neighbors": 30, "epsilon": 0.1, "n_jobs": None}

    def __init__(self, dim: int, params: dict | None = None, seed: int = 0):
        super().__init__(dim, params, seed)
        check_int(self.params["n_neighbors"], "index: pynndescent param 'n_neighbors'", lo=2)
        self._chunks: list[np.ndarray] = []
        self._index = None

    def _train(self, X: np.ndarray) -> None:
        pass  # nothing learnt before the graph is built

    def _add(self, X: np.ndarray) -> None:
        self._chunks.append(X)
        self._index = None

    def _build(self) -> None:
        X = np.concatenate(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
        self._chunks = [X]
        self._index = pynndescent.NNDescent(
            X,
            metric="euclidean",
            n_neighbors=int(min(self.params["n_neighbors"], max(2, X.shape[0] - 1))),
            random_state=self.seed,
            n_jobs=self.params["n_jobs"],
        )
        self._index.prepare()

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        if self._index is None:
            self._build()
        k_eff = min(k, self.n)
        I, D = self._index.query(Q, k=k_eff, epsilon=float(self.params["epsilon"]))
        return finalize(D, I, squared=False, k=k)  # 'euclidean' distances are not squared

    def _write_payload(self, f: IO[bytes]) -> None:
        if self.n and self._index is None:
            self._build()
        pickle.dump(self._index, f, protocol=pickle.HIGHEST_PROTOCOL)

    @classmethod
    def _read_payload(cls, f: IO[bytes], header: dict) -> "PynndescentIndex":
        obj = cls.__new__(cls)
        restore_common(obj, header)
        obj._index = pickle.load(f)
        obj._chunks = [] if obj._index is None else [obj._index._raw_data]
        return obj
