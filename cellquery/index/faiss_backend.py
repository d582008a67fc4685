"""faiss backend: any ``faiss.index_factory`` string with the L2 metric.

Uses a faiss GPU (``index_cpu_to_gpu`` on ``StandardGpuResources``) when the job asked for
one (config ``gpu``, :mod:`cellquery.device`; a job that asked but whose faiss sees no GPU
stops with one line) or ``params["gpu"] is True`` and ``faiss.get_num_gpus() > 0``; never
with ``params["gpu"] is False``. Indexes faiss cannot move to the GPU (HNSW, refine
wrappers) stay on the CPU. Saved files always hold the CPU form, which any job can load.
"""

from __future__ import annotations

import math
import warnings
from typing import IO

import faiss
import numpy as np

from cellquery import device
from cellquery.errors import InputError
from cellquery.index.base import Index, check_int, finalize, restore_common

# Points per list used to train the coarse quantiser; faiss's own default cap
# (ClusteringParameters.max_points_per_centroid) is 256, its minimum advice 39.
MAX_POINTS_PER_LIST = 256
MIN_POINTS_PER_LIST = 39
# PQ codebooks have 256 centroids per sub-quantiser; faiss trains them on at most
# 256 * 256 points, so the training sample is never cut below that.
MIN_TRAIN_SAMPLE = 256 * 256


def auto_nlist(n_total: int, n_train: int) -> int:
    """Number of inverted lists for ``nlist="auto"``.

    About ``4 * sqrt(n_total)`` (the faiss wiki's 4..16 * sqrt(n) rule, low end), but never
    more than ``n_train / 39`` so that every list gets >= 39 training points; at least 1.
    """
    return max(1, min(int(round(4.0 * math.sqrt(n_total))), n_train // MIN_POINTS_PER_LIST))


def _sample(X: np.ndarray, cap: int, rng: np.random.Generator) -> np.ndarray:
    """At most ``cap`` rows of ``X``: a seeded subsample in row order, or ``X`` itself."""
    if X.shape[0] <= cap:
        return X
    return np.ascontiguousarray(X[np.sort(rng.choice(X.shape[0], size=cap, replace=False))])


def ivf_lists(index) -> int | None:
    """Lists of an IVF index, None if it is none.

    A GPU IVF index (``GpuIndexIVFFlat``, ``GpuIndexIVFPQ``, ...) is no ``IndexIVF`` to
    ``faiss.extract_index_ivf``, which raises for it; it has ``nlist`` itself.
    """
    if hasattr(index, "nlist"):
        return int(index.nlist)
    try:
        return int(faiss.extract_index_ivf(index).nlist)
    except RuntimeError:
        return None


def _gpu_available() -> bool:
    return hasattr(faiss, "StandardGpuResources") and faiss.get_num_gpus() > 0


def _first_line(exc: Exception) -> str:
    """Last informative line of a faiss RuntimeError (they span several lines)."""
    text = str(exc).strip().splitlines()
    return text[-1] if text else type(exc).__name__


def _no_polysemous_training(index) -> None:
    """Turn off polysemous training of PQ codes wherever the factory turned it on.

    ``index_factory`` enables it for "PQm" and "IVFn,PQm" (not for "PQmnp"): a slow
    annealing (tens of seconds on 5,000 x 32) that only reorders PQ codes for Hamming
    pre-filtering (``polysemous_ht``), never used here; ADC distances do not depend on it.
    """
    sub = index
    for _ in range(8):  # unwrap IndexPreTransform / IndexRefine / IndexIDMap layers
        sub = faiss.downcast_index(sub)  # a non-owning proxy; ``index`` keeps ownership
        if hasattr(sub, "do_polysemous_training"):
            sub.do_polysemous_training = False
            return
        nxt = getattr(sub, "index", None) or getattr(sub, "base_index", None)
        if nxt is None:
            return
        sub = nxt


class FaissIndex(Index):
    """faiss index built from a factory string, L2 metric.

    Params
    ------
    factory : str, default "Flat"
        ``faiss.index_factory`` string, e.g. "Flat", "IVF{nlist},Flat", "IVF{nlist},PQ16",
        "HNSW32". ``{nlist}`` is filled from ``nlist``.
    nlist : int or "auto", default "auto"
        Inverted lists; "auto" -> :func:`auto_nlist`. Stored resolved (int) after training.
    n_total : int or None
        Final number of vectors, for ``nlist="auto"`` when training on a sample of a
        chunked build; defaults to the number of training rows.
    nprobe : int or None
        Lists visited per query (IVF); None = faiss default (1). Clipped to nlist.
    efSearch : int or None
        HNSW search beam; None = faiss default (16).
    refine : bool, default False
        Wrap in ``IndexRefineFlat``: exact re-ranking of ``k * k_factor`` candidates
        (stores the full vectors, 4 * dim bytes per row, in addition).
    k_factor : float, default 4
        Candidates per neighbour re-ranked when ``refine``.
    max_train : int or None
        Training sample cap; None -> ``max(256 * nlist, 65536)``.
    gpu : bool or None
        None = the job's request (config gpu, :mod:`cellquery.device`), False = CPU,
        True = a GPU if faiss has one.
    coarse : "flat" or "two_level", default "flat"
        How an IVF factory with a flat quantiser ("IVF{nlist},...") gets its lists.
        "flat": faiss's k-means and assignment (``nlist`` distances per row).
        "two_level" (:mod:`cellquery.index.coarse`, for atlas-sized ``nlist``): the
        centroids by k-means within about ``sqrt(nlist)`` k-means groups of the training
        sample, and every added row assigned through its ``assign_nprobe`` nearest groups
        (``faiss.contrib.ivf_tools.add_preassigned``); the codes are then faiss's own.
        Searching is unchanged (the flat quantiser). Not with ``refine`` or on a GPU.
    assign_nprobe : int, default 4
        Groups searched per added row with ``coarse: two_level``.
    """

    backend = "faiss"
    DEFAULTS = {
        "factory": "Flat",
        "nlist": "auto",
        "n_total": None,
        "nprobe": None,
        "efSearch": None,
        "refine": False,
        "k_factor": 4,
        "max_train": None,
        "gpu": None,
        "coarse": "flat",
        "assign_nprobe": 4,
    }

    def __init__(self, dim: int, params: dict | None = None, seed: int = 0):
        super().__init__(dim, params, seed)
        p = self.params
        if not isinstance(p["factory"], str) or not p["factory"].strip():
            raise InputError(f"index: faiss param 'factory' must be a non-empty string, got {p['factory']!r}")
        for key in ("nprobe", "efSearch", "n_total", "max_train"):
            if p[key] is not None:
                check_int(p[key], f"index: faiss param '{key}'", alternative="None")
        if p["nlist"] != "auto":
            check_int(p["nlist"], "index: faiss param 'nlist'", alternative="'auto'")
        if not isinstance(p["k_factor"], (int, float)) or p["k_factor"] < 1:
            raise InputError(f"index: faiss param 'k_factor' must be a number >= 1, got {p['k_factor']!r}")
        if p["coarse"] not in ("flat", "two_level"):
            raise InputError(f"index: faiss param 'coarse' must be flat or two_level, got {p['coarse']!r}")
        check_int(p["assign_nprobe"], "index: faiss param 'assign_nprobe'")
        if p["coarse"] == "two_level" and p["refine"]:
            raise InputError("index: faiss param 'coarse: two_level' does not combine with 'refine'")
        self._index = None
        self._assigner = None
        self._on_gpu = False
        self._gpu_res = None

    # -- helpers ---------------------------------------------------------------------
    @property
    def factory(self) -> str:
        """Factory string with ``{nlist}`` filled in (after training)."""
        return str(self.params["factory"]).replace("{nlist}", str(self.params["nlist"]))

    @property
    def on_gpu(self) -> bool:
        """Whether the index lives on a GPU."""
        return self._on_gpu

    def _wants_gpu(self) -> bool:
        if self.params["gpu"] is None:
            return device.use_faiss_gpu()
        return bool(self.params["gpu"]) and _gpu_available()

    def _maybe_to_gpu(self) -> None:
        if not self._wants_gpu():
            return
        try:
            self._gpu_res = faiss.StandardGpuResources()
            self._index = faiss.index_cpu_to_gpu(self._gpu_res, 0, self._index)
            self._on_gpu = True
        except (RuntimeError, AttributeError) as exc:  # e.g. HNSW, IndexRefine
            warnings.warn(f"faiss index '{self.factory}' stays on the CPU: {_first_line(exc)}")
            self._gpu_res = None

    def _cpu_index(self):
        return faiss.index_gpu_to_cpu(self._index) if self._on_gpu else self._index

    def _apply_search_params(self) -> None:
        """Set nprobe / efSearch / k_factor on the (possibly wrapped) faiss index."""
        p = self.params
        ps = faiss.GpuParameterSpace() if self._on_gpu else faiss.ParameterSpace()
        target = self._index.base_index if p["refine"] else self._index
        if p["refine"]:
            self._index.k_factor = float(p["k_factor"])
        if p["nprobe"] is not None:
            nlist = ivf_lists(target)
            if nlist is None:
                raise InputError(f"index: faiss param 'nprobe' needs an IVF factory, got '{self.factory}'")
            ps.set_index_parameter(target, "nprobe", int(min(p["nprobe"], nlist)))
        if p["efSearch"] is not None:
            try:
                ps.set_index_parameter(target, "efSearch", int(p["efSearch"]))
            except RuntimeError as exc:
                raise InputError(
                    f"index: faiss param 'efSearch' needs an HNSW factory, got '{self.factory}'"
                ) from exc

    # -- backend hooks --------------------------------------------------------------------
    def _train(self, X: np.ndarray) -> None:
        p = self.params
        n_train = X.shape[0]
        if "{nlist}" in p["factory"]:
            if p["nlist"] == "auto":
                p["nlist"] = auto_nlist(int(p["n_total"] or n_train), n_train)
            if p["nlist"] > n_train:
                raise InputError(
                    f"index: faiss nlist={p['nlist']} exceeds the {n_train} training rows"
                )
        try:
            index = faiss.index_factory(self.dim, self.factory, faiss.METRIC_L2)
        except RuntimeError as exc:
            raise InputError(
                f"index: bad faiss factory string '{self.factory}': {_first_line(exc)}"
            ) from exc
        try:  # seed the k-means of the coarse quantiser (faiss default seed is 1234)
            faiss.extract_index_ivf(index).cp.seed = self.seed
        except RuntimeError:
            pass
        _no_polysemous_training(index)
        if p["refine"]:
            # The wrapper must exist before anything is added (faiss checks ntotal match).
            index = faiss.IndexRefineFlat(index)
        self._index = index
        if p["coarse"] == "two_level":
            self._train_two_level(X)
            return
        self._maybe_to_gpu()
        if self._on_gpu and hasattr(self._index, "cp"):  # the GPU copy has its own k-means parameters
            self._index.cp.seed = self.seed
        self._apply_search_params()
        if not self._index.is_trained:
            nlist = ivf_lists(self._index.base_index if p["refine"] else self._index) or 1
            cap = p["max_train"] or max(MAX_POINTS_PER_LIST * int(nlist), MIN_TRAIN_SAMPLE)
            self._train_faiss(_sample(X, cap, np.random.default_rng(self.seed)))

    def _train_faiss(self, X: np.ndarray) -> None:
        try:
            self._index.train(X)
        except RuntimeError as exc:
            raise InputError(
                f"index: faiss training of '{self.factory}' on {X.shape[0]} rows failed: {_first_line(exc)}"
            ) from exc

    def _two_level_ivf(self):
        """The IVF of a ``coarse: two_level`` index (refused at training unless its quantiser is flat)."""
        return faiss.extract_index_ivf(self._index)

    def _train_two_level(self, X: np.ndarray) -> None:
        from cellquery.index.coarse import two_level_kmeans

        p = self.params
        try:
            ivf = self._two_level_ivf()
        except RuntimeError as exc:
            raise InputError(f"index: faiss param 'coarse: two_level' needs an IVF factory, got '{self.factory}'") from exc
        quantizer = faiss.downcast_index(ivf.quantizer)
        if not isinstance(quantizer, faiss.IndexFlat) or not isinstance(faiss.downcast_index(self._index), faiss.IndexIVF):
            raise InputError(f"index: faiss param 'coarse: two_level' needs 'IVF{{nlist}},<codes>' with a flat "
                             f"quantiser and no transform, got '{self.factory}'")
        rng = np.random.default_rng(self.seed)
        X = _sample(X, p["max_train"] or max(MAX_POINTS_PER_LIST * int(ivf.nlist), MIN_TRAIN_SAMPLE), rng)
        quantizer.add(two_level_kmeans(X, int(ivf.nlist), seed=self.seed, max_points_per_centroid=MAX_POINTS_PER_LIST))
        # the codes (faiss's PQ / SQ of the residuals) on at most faiss's own PQ sample; the
        # quantiser already holds nlist centroids, so faiss does not train it again
        self._train_faiss(_sample(X, MIN_TRAIN_SAMPLE, rng))
        self._apply_search_params()

    def _add(self, X: np.ndarray) -> None:
        if self.params.get("coarse", "flat") == "two_level" and not self._on_gpu:
            from faiss.contrib.ivf_tools import add_preassigned

            from cellquery.index.coarse import TwoLevelAssigner

            ivf = self._two_level_ivf()
            if self._assigner is None:  # from the quantiser's centroids (also after a load)
                self._assigner = TwoLevelAssigner(ivf.quantizer.reconstruct_n(0, ivf.nlist),
                                                  nprobe=int(self.params["assign_nprobe"]), seed=self.seed)
            X = np.ascontiguousarray(X, dtype=np.float32)
            add_preassigned(ivf, X, self._assigner.assign(X, faiss.omp_get_max_threads()))
            return
        self._index.add(X)

    def _search(self, Q: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        self._apply_search_params()
        D, I = self._index.search(Q, k)
        return finalize(D, I, squared=True)  # faiss L2 returns squared distances

    def _write_payload(self, f: IO[bytes]) -> None:
        if self._index is None:
            return
        writer = faiss.PyCallbackIOWriter(f.write)
        faiss.write_index(self._cpu_index(), writer)
        del writer

    @classmethod
    def _read_payload(cls, f: IO[bytes], header: dict) -> "FaissIndex":
        obj = cls.__new__(cls)
        restore_common(obj, header)
        obj._on_gpu = False
        obj._gpu_res = None
        obj._index = None
        obj._assigner = None
        if header["is_trained"]:
            reader = faiss.PyCallbackIOReader(f.read)
            obj._index = faiss.read_index(reader)
            del reader
            # read_index already returns the concrete class; do not downcast again (the
            # extra proxy would free the owned index twice).
            obj._maybe_to_gpu()
            obj._apply_search_params()
        return obj
