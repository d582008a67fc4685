"""Settings of the scale benchmark: index presets, defaults, config check, job resources.

What the Snakemake rules (rules/scale.smk) need to plan the jobs; an index library is
imported only when :func:`check_scale_config` checks params of its backend.
:class:`ScaleSettings` is built once from ``config["scale"]`` and holds every default
of the benchmark in one place (the measurement, :func:`cellquery.bench.knn.run_benchmark`,
and its command line take their defaults from it too).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from cellquery.errors import InputError
from cellquery.index import make_index

# Named index presets: (backend, params). Tuned values are set on the command line or
# in the sweep config; "{nlist}" with nlist "auto" is about 4 sqrt(n_ref) lists.
PRESETS: dict[str, tuple[str, dict]] = {
    "flat": ("faiss", {"factory": "Flat"}),
    "gemm": ("gemm", {}),
    "ivfflat": ("faiss", {"factory": "IVF{nlist},Flat", "nprobe": 8}),
    "ivfsq8": ("faiss", {"factory": "IVF{nlist},SQ8", "nprobe": 8}),
    "ivfpq16": ("faiss", {"factory": "IVF{nlist},PQ16", "nprobe": 16}),
    "ivfpq16_refine": ("faiss", {"factory": "IVF{nlist},PQ16", "nprobe": 16, "refine": True, "k_factor": 4}),
    # coarse quantizer searched with an HNSW graph: assigning 10^7 cells to 16k lists costs
    # a few graph hops each instead of 16k distances (flat quantizer)
    "ivfpq16_hnswq": ("faiss", {"factory": "IVF{nlist}_HNSW32,PQ16", "nlist": 16384, "nprobe": 32}),
    # the same lists trained and assigned through ~128 groups of centroids (cellquery.index.coarse):
    # at 10^6 cells, 16,384 lists, 2 cores, training 5.9 s instead of 77 s (flat quantiser) and
    # adding 2.3 s instead of 11.8 s (the HNSW graph assigned no faster than the flat one here)
    "ivfpq16_2level": ("faiss", {"factory": "IVF{nlist},PQ16", "nlist": 16384, "nprobe": 32, "coarse": "two_level"}),
    # the same with 8-byte codes (16 bytes per cell with the id): the codes alone rank poorly
    # (recall@50 0.59 at 4 x 10^7), so it is searched with candidates re-ranked from the
    # reference on disk (search key disk_k_factor): at 4 x 10^7, nprobe 16 and 4k candidates
    # reached recall@50 0.919, as 16-byte codes with 2k candidates, in 4.7 s (warm cache)
    "ivfpq8_2level": ("faiss", {"factory": "IVF{nlist},PQ8", "nlist": 16384, "nprobe": 16, "coarse": "two_level"}),
    # 32 sub-quantizers x 4 bits = 16 bytes per code, scanned with SIMD (faiss "fast scan")
    "ivfpq32fs": ("faiss", {"factory": "IVF{nlist},PQ32x4fs", "nprobe": 16}),
    "ivfpq32fs_refine": ("faiss", {"factory": "IVF{nlist},PQ32x4fs", "nprobe": 16, "refine": True, "k_factor": 4}),
    "hnsw32": ("faiss", {"factory": "HNSW32", "efSearch": 64}),
    "hnswlib": ("hnswlib", {"M": 16, "ef_construction": 200, "ef": 100}),
    "pynndescent": ("pynndescent", {}),
}

# Params that may change between searches of one built index.
SEARCH_KEYS = ("nprobe", "efSearch", "k_factor", "ef", "epsilon", "threads", "num_threads",
               "n_jobs", "query_block", "ref_block", "batch_size", "disk_k_factor")


def preset_spec(name: str, overrides: dict | None = None) -> tuple[str, dict]:
    """Backend and params of a preset with ``overrides`` merged over its params."""
    if name not in PRESETS:
        raise InputError(f"bench: unknown index preset '{name}'; known: {sorted(PRESETS)}")
    backend, params = PRESETS[name]
    return backend, {**params, **(overrides or {})}


def non_search_keys(setting: Mapping) -> list[str]:
    """The keys of a search setting that are not search-time params (sorted)."""
    return sorted(set(setting) - set(SEARCH_KEYS))


@dataclass(frozen=True)
class IndexRun:
    """One entry of ``scale.indexes``: a preset, its overrides and the sizes it runs at.

    ``sizes`` None: the benchmark's sizes; ``max_train`` / ``exact_queries`` None: the
    benchmark's values.
    """

    preset: str
    params: Mapping = field(default_factory=dict)
    search_sweep: tuple[Mapping, ...] | None = None
    sizes: tuple[int, ...] | None = None
    max_size: int | None = None
    max_train: int | None = None
    exact_queries: int | None = None

    @classmethod
    def from_config(cls, spec: Mapping) -> "IndexRun":
        values = dict(spec)
        values["params"] = dict(values.get("params") or {})
        for key in ("search_sweep", "sizes"):
            if values.get(key) is not None:
                values[key] = tuple(values[key])
        return cls(**values)

    @property
    def n_searches(self) -> int:
        """Search settings tried on one build (one table row each)."""
        return len(self.search_sweep or [{}])


@dataclass(frozen=True)
class ScaleSettings:
    """The ``scale`` section of the config with its defaults (config/schema.yaml)."""

    dim: int = 32
    n_query: int = 10000
    k: int = 50
    seed: int = 0
    threads: int = 2
    chunk: int = 1_000_000
    exact_queries: int = 1000
    batch_size: int = 10000
    max_train: int = 1_000_000
    sizes: tuple[int, ...] = ()
    indexes: Mapping[str, IndexRun] = field(default_factory=dict)

    @classmethod
    def from_config(cls, scale: Mapping | None) -> "ScaleSettings":
        """Settings of ``config["scale"]`` (absent or empty: the defaults, no index)."""
        values = dict(scale or {})
        values.pop("meta_cells", None)  # its own settings: cellquery.bench.meta_cells
        values.pop("methods", None)  # its own settings: cellquery.bench.methods_scale
        values["sizes"] = tuple(values.get("sizes") or ())
        values["indexes"] = {name: IndexRun.from_config(spec) for name, spec in (values.get("indexes") or {}).items()}
        return cls(**values)

    def runs(self) -> list[tuple[str, int]]:
        """(index name, reference size) of every job."""
        runs = []
        for name, spec in self.indexes.items():
            for n in self.sizes if spec.sizes is None else spec.sizes:
                if spec.max_size is None or n <= spec.max_size:
                    runs.append((name, int(n)))
        return runs

    def benchmark_args(self, name: str, n_ref: int) -> dict:
        """Arguments of :func:`cellquery.bench.knn.run_benchmark` for one job (not threads, tmpdir)."""
        spec = self.indexes[name]
        return dict(
            index=spec.preset, n_ref=int(n_ref), n_query=self.n_query, dim=self.dim, k=self.k,
            seed=self.seed, params=spec.params, chunk=self.chunk,
            exact_queries=self.exact_queries if spec.exact_queries is None else spec.exact_queries,
            batch_size=self.batch_size, max_train=self.max_train if spec.max_train is None else spec.max_train,
            search_sweep=None if spec.search_sweep is None else [dict(s) for s in spec.search_sweep],
        )

    def mem_mb(self, name: str, n_ref: int) -> int:
        """Memory (MB) to request for one job (:func:`estimate_mem_mb`)."""
        spec = self.indexes[name]
        return estimate_mem_mb(spec.preset, int(n_ref), self.dim, self.n_query, self.k, self.chunk, spec.params)

    def runtime_min(self, name: str, n_ref: int) -> int:
        """Minutes to request for one job (:func:`estimate_runtime_min`)."""
        spec = self.indexes[name]
        return estimate_runtime_min(spec.preset, int(n_ref), self.threads, spec.n_searches)


DEFAULTS = ScaleSettings()


def check_scale_config(scale: Mapping) -> None:
    """Raise :class:`InputError` naming the first bad key of the ``scale`` config section.

    Checks what the schema cannot: preset names, param names of the preset's backend,
    and that ``search_sweep`` holds search-time params only.
    """
    for name, spec in (scale.get("indexes") or {}).items():
        where = f"config: scale.indexes.{name}"
        if spec.get("preset") not in PRESETS:
            raise InputError(f"{where}.preset: unknown {spec.get('preset')!r} (known: {', '.join(PRESETS)})")
        backend, params = preset_spec(spec["preset"], spec.get("params"))
        try:
            make_index(backend, int(scale.get("dim", DEFAULTS.dim)), params, 0)
        except InputError as exc:
            raise InputError(f"{where}.params: {exc}") from exc
        for setting in spec.get("search_sweep") or []:
            bad = non_search_keys(setting)
            if bad:
                raise InputError(f"{where}.search_sweep: {bad} are not search-time params (known: {', '.join(SEARCH_KEYS)})")


# Bytes per reference cell held in memory by each backend, beyond the float32 chunks
# being generated (vectors 4*dim, ids 8, graph links); used for Snakemake mem_mb.
def _index_bytes_per_cell(backend: str, params: dict, dim: int) -> float:
    if backend == "gemm":
        return 4 * dim + 4
    if backend == "faiss":
        return _faiss_bytes_per_cell(params, dim)
    if backend == "hnswlib":
        return 4 * dim + 2 * int(params.get("M", 16)) * 4 + 16
    if backend == "pynndescent":
        return 4 * dim + 2000  # NN-descent build peak, about 2 GB per 10^6 cells
    return 4 * dim


def _faiss_bytes_per_cell(params: dict, dim: int) -> float:
    """Code bytes (PQ m, SQ8 dim, else float32 vectors), IVF ids, HNSW links, refine vectors."""
    f = str(params.get("factory", "Flat"))
    vec = 4 * dim
    if "PQ" in f:
        m = int("".join(ch for ch in f.split("PQ")[1].split("x")[0].split(",")[0] if ch.isdigit()) or 16)
        vec = m
    elif "SQ8" in f:
        vec = dim
    per = vec + (8 if "IVF" in f else 0)
    if "HNSW" in f and "IVF" not in f:
        M = int("".join(ch for ch in f.split("HNSW")[1].split(",")[0] if ch.isdigit()) or 32)
        per += 2 * M * 4 + 16
    if params.get("refine"):
        per += 4 * dim
    return per


def estimate_mem_mb(index: str, n_ref: int, dim: int = DEFAULTS.dim, n_query: int = DEFAULTS.n_query,
                    k: int = DEFAULTS.k, chunk: int = DEFAULTS.chunk, params: dict | None = None) -> int:
    """Peak memory (MB) to request for one measurement.

    Interpreter + libraries (~700 MB), a few generated chunks and the training copy,
    the index twice (saving may serialise a copy: hnswlib/pynndescent pickles, the gemm
    concatenation), labels, and the search results; plus 30 %.
    """
    backend, p = preset_spec(index, params)
    chunk_b = min(chunk, n_ref) * (dim * 4 + 4) * 4
    index_b = _index_bytes_per_cell(backend, p, dim) * n_ref * 2
    query_b = n_query * (dim * 4 + k * 12 * 3)
    total = 700e6 + chunk_b + index_b + query_b + n_ref * 2
    return int(math.ceil(total * 1.3 / 1e6))


# Rough CPU-seconds per 10^6 reference cells on one core (measured on 2-core machines):
# generation + exact ground truth + build + search of 10^4 queries.
_CPU_S_PER_MILLION = {"flat": 130, "gemm": 60, "ivfflat": 40, "ivfsq8": 40, "ivfpq16": 40,
                      "ivfpq16_refine": 45, "ivfpq32fs": 40, "ivfpq32fs_refine": 45, "ivfpq16_hnswq": 25, "ivfpq16_2level": 10, "ivfpq8_2level": 10, "hnsw32": 400, "hnswlib": 500, "pynndescent": 600}


def estimate_runtime_min(index: str, n_ref: int, threads: int = DEFAULTS.threads, search_settings: int = 1) -> int:
    """Minutes to request for one measurement: fixed training cost + per-cell work, tripled."""
    preset_spec(index)
    per_m = _CPU_S_PER_MILLION.get(index, 600) * (1 + 0.3 * (search_settings - 1))
    cpu_s = 300 + per_m * n_ref / 1e6
    return int(math.ceil(3 * cpu_s / max(1, threads) / 60)) + 5
