"""Query time of each method against reference size (Fig. 2d of the Cell BLAST paper, by method).

Part of the scale benchmark (rules/scale.smk, config ``scale.methods``). One
simulated reference atlas (:func:`cellquery.data.simulate.simulate_dataset`,
counts of several studies and donors) is drawn once at the largest size asked
for, together with a query of ``n_query`` cells from another study; both are
QC'd and log-normalised (:func:`cellquery.preprocess.prepare_group`) and the
highly variable genes are chosen once on the whole atlas
(:func:`cellquery.hvg.select_hvg`). For repeat r the references are nested
subsamples of the atlas: the first ``size`` cells of one seeded permutation
(:func:`subsample`), so the 10^3-cell reference of repeat r lies inside its
10^4-cell one.

Every (method, size, repeat) runs in a fresh Python process of its own
(:func:`run_capped`) under an address-space limit (``max_memory_gb``, by
``resource.setrlimit``) and a wall-clock limit (``max_seconds``); it reads only
its reference rows from the atlas file. A run past either limit is recorded as
``over_time`` / ``over_memory`` and the method is not run at larger sizes
(``skipped``); nor is it run at a size where its time or memory, projected on
the line through the two sizes below (a lower bound for costs that grow at least
linearly in reference cells, :func:`projected_stop`), passes a cap. An atlas above
``backed_above_cells`` is simulated and preprocessed chunk by chunk, as the
workflow's chunked path does. Methods:

* ``own``: the project's path: PCA of the scaled HVGs fitted on the reference
  (at most ``fit_cells`` of it, seeded, as the chunked path) (:mod:`cellquery.embed.pca`), an index (:func:`cellquery.index.build_index`),
  the reference's own hits for the calibration and leave-one-out distances
  (train), then the query's projection, search and transfer
  (:func:`cellquery.transfer.predict_table`) (query).
* ``predictor``: a peer tool through :func:`cellquery.predictors.run_predictor`;
  its ``timings`` phases in :data:`TRAIN_PHASES` are train, the others query.
  A predictor whose runtime is missing (:func:`cellquery.registry.skip_reason`)
  is recorded as ``unavailable`` with the reason.

The tidy table (:data:`COLUMNS`) has one row per run; :func:`summarise` gives
mean and standard deviation of the query time over the repeats that finished
and the query throughput ``n_query / mean query_s`` (cells/s).
"""

from __future__ import annotations

import json
import os
import resource
import tempfile
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from cellquery.backed import BACKED_ABOVE_CELLS, FIT_CELLS, count_cells, fit_rows, read_rows
from cellquery.bench.memory import peak_rss_mb
from cellquery.errors import InputError

COLUMNS = ["method", "size", "repeat", "train_s", "query_s", "total_s", "peak_rss_mb", "status", "reason"]
SUMMARY_COLUMNS = ["method", "size", "n_ok", "query_s_mean", "query_s_sd", "train_s_mean", "total_s_mean",
                   "peak_rss_mb_max", "cells_per_s"]
# predictor phases that prepare the reference (all others serve the query)
TRAIN_PHASES = frozenset({"train_s", "index_s", "embed_s", "pretrain_s"})
# statuses of a run that did not fit: the method is not run at larger sizes
DID_NOT_FIT = ("over_time", "over_memory")
LABEL_KEY, BATCH_KEY = "cell_type", "study"
# fit_cells: the PCA is fitted on a seeded subsample of at most this many reference cells, as the
# workflow's chunked path does
OWN_DEFAULTS = {"n_comps": 30, "index": "faiss", "index_params": {"factory": "Flat"}, "k": 10, "fit_cells": FIT_CELLS,
                "transfer": {"voter": "majority", "min_hits": 2, "min_fraction": 0.5, "distance_quantile": 0.95}}


@dataclass(frozen=True)
class MethodsScaleSettings:
    """``scale.methods``: sizes, repeats, query size, limits, the atlas and the methods (name -> spec)."""

    sizes: tuple[int, ...] = (1_000, 10_000, 100_000)
    repeats: int = 4
    n_query: int = 10_000
    max_seconds: float = 1800.0
    max_memory_gb: float = 24.0
    n_genes: int = 2000
    n_top_genes: int = 1000
    studies: tuple[str, ...] = ("study1", "study2", "study3")
    query_study: str = "study4"
    seed: int = 0
    methods: Mapping = field(default_factory=dict)
    # per method, at most this many repeats (slow peers), e.g. {scanvi_fast: 1}
    max_repeats: Mapping = field(default_factory=dict)
    # skip a size whose run would not fit, projected from the two sizes below it (projected_cost)
    project_limits: bool = True
    # seconds of runs per method (a method's spec may give its own budget_s): no run starts once the
    # method's finished runs and the next one's estimate (run_estimate) would pass it; None: no budget
    budget_s: float | None = None
    # before a method's first timed run in a job, one untimed run at the smallest size: the first run of
    # a fresh install compiles numba caches and the like (CellTypist's first query: 85 s, the next 36 s)
    warmup: bool = True
    # atlases above this many cells are simulated and preprocessed chunk by chunk (the workflow's bound)
    backed_above_cells: int = BACKED_ABOVE_CELLS

    @classmethod
    def from_config(cls, scale: Mapping, require_methods: bool = True) -> "MethodsScaleSettings":
        """``scale.methods`` checked; ``require_methods`` False for a job that runs no method (the atlas)."""
        spec = dict(scale.get("methods") or {})
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(spec) - known)
        if unknown:
            raise InputError(f"config: scale.methods: unknown key {unknown[0]!r}")
        for key in ("sizes", "studies"):
            if key in spec:
                spec[key] = tuple(spec[key])
        spec["seed"] = int(spec.get("seed", scale.get("seed", 0)))
        settings = cls(**spec)
        if require_methods and not settings.methods:
            raise InputError("config: scale.methods.methods: no method given")
        if any(int(s) < 2 for s in settings.sizes) or settings.repeats < 1 or settings.n_query < 1:
            raise InputError("config: scale.methods: sizes must be >= 2, repeats and n_query >= 1")
        for name, method in settings.methods.items():
            if ("predictor" in method) == (method.get("kind") == "own"):
                raise InputError(f"config: scale.methods.methods.{name}: give either predictor: <name> or kind: own")
        return settings

    def repeats_of(self, method: str) -> int:
        return min(self.repeats, int(self.max_repeats.get(method, self.repeats)))

    def budget_of(self, method: str) -> float | None:
        budget = self.methods.get(method, {}).get("budget_s", self.budget_s)
        return None if budget is None else float(budget)


def job_limits(settings: MethodsScaleSettings, name: str) -> dict[str, int]:
    """Slurm resources of method ``name``'s workflow job, from the caps: every run may last ``max_seconds``.

    ``runtime`` (minutes): each size x repeat at ``max_seconds`` plus a minute
    (start-up, reading its rows), or with a budget (``budget_s``) the budget and one
    such run past it, if less; ``mem_mb``: one run at ``max_memory_gb`` plus 1 GB
    for the job's own process (runs are made one at a time).
    """
    runs = len(settings.sizes) * settings.repeats_of(name)
    seconds = runs * (settings.max_seconds + 60)
    budget = settings.budget_of(name)
    if budget is not None:
        seconds = min(seconds, budget + settings.max_seconds + 60)
    return {"runtime": int(np.ceil(seconds / 60)), "mem_mb": int(np.ceil(settings.max_memory_gb * 1024)) + 1024}


def subsample(n_atlas: int, size: int, repeat: int, seed: int = 0) -> np.ndarray:
    """Sorted row numbers of repeat ``repeat``'s ``size``-cell reference: the first ``size`` of one seeded permutation.

    Nested over sizes (a repeat's smaller reference lies inside its larger one)
    and the same on every call with the same arguments.
    """
    if not 0 < size <= n_atlas:
        raise InputError(f"scale.methods: reference size {size} is not in 1..{n_atlas} (the atlas)")
    order = np.random.default_rng([seed, repeat]).permutation(n_atlas)
    return np.sort(order[:size])


def simulate_atlas(settings: MethodsScaleSettings, workdir: str | os.PathLike) -> tuple[Path, Path, list[str]]:
    """Simulate, QC and normalise the atlas (largest size) and the query; write both; return (atlas, query, HVGs).

    An atlas above ``backed_above_cells`` takes the workflow's chunked path: the
    counts are written chunk by chunk (:func:`cellquery.data.simulate.write_simulated`),
    QC'd and normalised chunk by chunk (:func:`cellquery.backed.prepare_group_backed`)
    and its HVGs come from chunked gene moments (:func:`cellquery.backed.select_hvg_backed`),
    so no step holds the whole matrix.
    """
    n_atlas = max(int(s) for s in settings.sizes)
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    paths = workdir / "atlas.h5ad", workdir / "query.h5ad"
    atlas_params = dict(studies=settings.studies, seed=settings.seed, n_genes=settings.n_genes)
    query_params = dict(studies=(settings.query_study,), seed=settings.seed + 1, n_genes=settings.n_genes)
    if n_atlas > settings.backed_above_cells:
        genes = _simulate_atlas_chunked(settings, n_atlas, atlas_params, query_params, paths)
    else:
        genes = _simulate_atlas_in_memory(settings, n_atlas, atlas_params, query_params, paths)
    return paths[0], paths[1], genes


def _simulate_atlas_in_memory(settings, n_atlas, atlas_params, query_params, paths) -> list[str]:
    from cellquery.data.simulate import simulate_dataset
    from cellquery.hvg import select_hvg
    from cellquery.io import write_h5ad
    from cellquery.preprocess import prepare_group

    atlas = simulate_dataset(n_atlas, **atlas_params)
    query = simulate_dataset(settings.n_query, **query_params)
    for part in (atlas, query):
        part.uns["values"] = "counts"
    atlas, query = prepare_group([atlas], [query], reference_sources=["atlas"], query_sources=["query"],
                                 label_key=LABEL_KEY, batch_keys=[BATCH_KEY], min_genes=1)
    _check_qc(atlas.n_obs, n_atlas)
    genes = select_hvg(atlas, batch_key=BATCH_KEY, n_top_genes=settings.n_top_genes)["gene"].tolist()
    write_h5ad(atlas, paths[0])
    write_h5ad(query, paths[1])
    return genes


def _simulate_atlas_chunked(settings, n_atlas, atlas_params, query_params, paths) -> list[str]:
    from cellquery.backed import prepare_group_backed, read_backed, select_hvg_backed
    from cellquery.data.simulate import write_simulated

    with tempfile.TemporaryDirectory(dir=paths[0].parent) as tmp:
        raw = Path(tmp) / "atlas_counts.h5ad", Path(tmp) / "query_counts.h5ad"
        write_simulated(raw[0], name="atlas", n_cells=n_atlas, **atlas_params)
        write_simulated(raw[1], name="query", n_cells=settings.n_query, **query_params)
        atlas, query = read_backed(raw[0], obsm=True), read_backed(raw[1], obsm=True)
        try:
            n_written, _ = prepare_group_backed(
                [(atlas, np.ones(atlas.n_obs, dtype=bool))], [(query, np.ones(query.n_obs, dtype=bool))],
                out_reference=paths[0], out_query=paths[1], reference_sources=["atlas"], query_sources=["query"],
                label_key=LABEL_KEY, batch_keys=[BATCH_KEY], min_genes=1, seed=settings.seed)
        finally:
            atlas.close()
            query.close()
    _check_qc(n_written, n_atlas)
    atlas = read_backed(paths[0])
    try:
        return select_hvg_backed(atlas, batch_key=BATCH_KEY, n_top_genes=settings.n_top_genes)["gene"].tolist()
    finally:
        atlas.close()


def _check_qc(n_kept: int, n_atlas: int) -> None:
    if n_kept < n_atlas:  # QC removed cells: the largest size must still fit
        raise InputError(f"scale.methods: {n_atlas - n_kept} atlas cells failed QC; lower the largest size")


def own_path(reference, query, genes: Sequence[str], spec: Mapping, seed: int) -> dict[str, float]:
    """The project's path; seconds of ``train_s`` (PCA fit, index, reference hits) and ``query_s`` (project, search, transfer)."""
    from sklearn.decomposition import PCA

    from cellquery.embed.pca import dense, scale_fit, transform_chunks
    from cellquery.index import build_index
    from cellquery.index.calibration import calibrate_from_reference_hits, reference_hits
    from cellquery.settings import GroupSettings, TransferSettings
    from cellquery.transfer import predict_table

    spec = {**OWN_DEFAULTS, **spec}
    k = int(spec["k"])
    group = GroupSettings(label_key=LABEL_KEY, batch_keys=(BATCH_KEY,))
    transfer = TransferSettings.from_config(spec["transfer"])
    ref_x, qry_x = reference[:, list(genes)].X, query[:, list(genes)].X
    start = time.perf_counter()
    # the same steps as cellquery.embed.pca.fit_project, split so that the query's projection is timed apart
    mean, std = scale_fit(ref_x)

    def scale(block):
        return np.clip((block - mean) / std, -10, 10)

    n_comps = min(int(spec["n_comps"]), ref_x.shape[1] - 1, ref_x.shape[0] - 1)
    fit = ref_x[fit_rows(ref_x.shape[0], int(spec["fit_cells"]), seed)]
    model = PCA(n_components=n_comps, svd_solver="covariance_eigh").fit(scale(dense(fit)))
    del fit
    ref_emb = transform_chunks(ref_x, lambda block, _: model.transform(scale(block)), n_comps)
    index = build_index(spec["index"], ref_emb, dict(spec["index_params"]), seed=seed)
    # the reference's own hits (list by list for ivf_gemm), as the workflow's calibration takes them
    rd, ri = reference_hits(index, ref_emb, min(k + 1, len(ref_emb)))
    _, self_distances = calibrate_from_reference_hits(ref_emb, rd, ri, k=k, seed=seed)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    qry_emb = transform_chunks(qry_x, lambda block, _: model.transform(scale(block)), n_comps)
    distances, indices = index.search(qry_emb, min(k, len(ref_emb)))
    predict_table(reference_obs=reference.obs, query_obs=query.obs, distances=distances, indices=indices,
                  self_distances=self_distances, group=group, settings=transfer)
    return {"train_s": train_s, "query_s": time.perf_counter() - start}


def predictor_path(reference, query, genes: Sequence[str], spec: Mapping, seed: int) -> dict[str, float]:
    """A peer predictor through run_predictor; its phases summed into ``train_s`` (:data:`TRAIN_PHASES`) and ``query_s``."""
    from cellquery.predictors import run_predictor
    from cellquery.settings import GroupSettings

    group = GroupSettings(label_key=LABEL_KEY, batch_keys=(BATCH_KEY,))
    timings = run_predictor(reference, query, genes, predictor=spec["predictor"], params=dict(spec.get("params") or {}),
                            group=group, seed=seed)[3]
    phases = dict(zip(timings["phase"], timings["seconds"]))
    return {"train_s": sum(v for p, v in phases.items() if p in TRAIN_PHASES),
            "query_s": sum(v for p, v in phases.items() if p not in TRAIN_PHASES)}


def _timed_run(run: Callable, atlas, query_path, genes, rows, spec: Mapping, seed: int,
               whole: bool = True) -> dict[str, float]:
    """Read the reference rows and the query, call ``run`` (own_path or predictor_path); seconds by phase.

    ``whole`` False: only ``X`` at the genes ``genes`` is read (the own path uses no more).
    """
    import anndata as ad

    if whole:
        reference, query = read_rows(atlas, rows), ad.read_h5ad(query_path)
    else:
        reference = read_rows(atlas, rows, genes=genes, layers=False)
        query = read_rows(query_path, np.arange(count_cells(query_path)), genes=genes, layers=False)
    start = time.perf_counter()
    out = run(reference, query, genes, spec, seed)
    out["total_s"] = time.perf_counter() - start
    return out


def run_own(atlas, query_path, genes, rows, spec: Mapping, seed: int) -> dict[str, float]:
    """One run of the project's own path in the current process (:func:`own_path`)."""
    return _timed_run(own_path, atlas, query_path, genes, rows, spec, seed, whole=False)


def run_peer(atlas, query_path, genes, rows, spec: Mapping, seed: int) -> dict[str, float]:
    """One run of a peer predictor in the current process (:func:`predictor_path`)."""
    return _timed_run(predictor_path, atlas, query_path, genes, rows, spec, seed)


def run_method(atlas, query_path, genes, rows, spec: Mapping, seed: int) -> dict[str, float]:
    """One run in the current process: :func:`run_own` or :func:`run_peer` as the spec says."""
    run = run_own if spec.get("kind") == "own" else run_peer
    return run(atlas, query_path, genes, rows, spec, seed)


def _child(job_path: str) -> None:
    """Child process: read (func, args, memory cap), cap the address space, run, write (status, value or reason, peak RSS MB)."""
    import pickle

    with open(job_path, "rb") as handle:
        func, args, max_memory_bytes = pickle.load(handle)
    if max_memory_bytes:
        resource.setrlimit(resource.RLIMIT_AS, (max_memory_bytes, max_memory_bytes))
    try:
        status, payload = "ok", func(*args)
    except MemoryError:
        status, payload = "over_memory", "MemoryError"
    except Exception as error:  # any other failure is reported with its last line, not raised in the parent
        status, payload = "failed", (traceback.format_exception_only(error)[-1].strip() or type(error).__name__)
    result = (status, payload, peak_rss_mb())
    with open(job_path + ".out", "wb") as handle:
        pickle.dump(result, handle)


def run_capped(func: Callable, args: tuple = (), *, max_seconds: float,
               max_memory_gb: float | None = None) -> tuple[str, object, float]:
    """Call ``func(*args)`` in a fresh Python process; return (status, value or reason, peak RSS in MB).

    ``func`` and ``args`` must pickle (``func`` by its module and name; the
    child gets this process's ``sys.path``). status: ``ok``; ``over_time``
    (killed after ``max_seconds``); ``over_memory`` (MemoryError under the
    address-space cap ``max_memory_gb``, or killed by SIGKILL); ``failed``
    (another exception; the reason is its message). A fresh interpreter, not a
    fork, so that the peak RSS is the run's own and nothing of the caller's
    ``__main__`` runs again.
    """
    import pickle
    import subprocess
    import sys

    cap = int(max_memory_gb * 2**30) if max_memory_gb else 0
    with tempfile.TemporaryDirectory() as tmp:
        job = os.path.join(tmp, "job.pkl")
        with open(job, "wb") as handle:
            pickle.dump((func, args, cap), handle)
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        code = f"from cellquery.bench.methods_scale import _child; _child({job!r})"
        process = subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        try:
            _, err = process.communicate(timeout=max_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
            return "over_time", f"still running after {max_seconds:g} s", float("nan")
        if not os.path.exists(job + ".out"):
            last = (err.decode(errors="replace").strip().splitlines() or [""])[-1]
            status = "over_memory" if process.returncode == -9 else "failed"
            return status, f"child exited with code {process.returncode}: {last}", float("nan")
        with open(job + ".out", "rb") as handle:
            return pickle.load(handle)


def measure(settings: MethodsScaleSettings, workdir: str | os.PathLike | None = None, log=None,
            partial: str | os.PathLike | None = None, runner: Callable = None) -> pd.DataFrame:
    """The tidy table (:data:`COLUMNS`): every method at every size and repeat, in ascending size.

    ``log`` (a text stream) gets a line per run; ``partial`` (a path) the table so far after every run.
    ``runner`` (default :func:`run_method`, same arguments; importable, for the child process) runs one
    method. The workflow runs one job per method (:func:`measure_method`, in the method's own env) on
    one simulated atlas (:func:`simulate_atlas`).
    """
    runner, check_runtime = (run_method, True) if runner is None else (runner, False)
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        atlas, query_path, genes = simulate_atlas(settings, tmp)
        tables = []
        for name in settings.methods:
            done = pd.concat(tables, ignore_index=True) if tables else None
            tables.append(measure_method(settings, name, atlas, query_path, genes, runner=runner,
                                         check_runtime=check_runtime, log=log, partial=partial, before=done))
    return pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=COLUMNS)


def measure_method(settings: MethodsScaleSettings, name: str, atlas, query_path, genes: Sequence[str], *,
                   runner: Callable, check_runtime: bool = True, log=None,
                   partial: str | os.PathLike | None = None, before: pd.DataFrame | None = None,
                   resume: pd.DataFrame | None = None) -> pd.DataFrame:
    """The rows of method ``name`` (every size and repeat, ascending size) on the atlas :func:`simulate_atlas` wrote.

    A method over ``max_seconds`` or ``max_memory_gb`` at one size, projected past them
    (:func:`projected_stop`) or above its spec's ``max_size`` is not run at larger sizes (``skipped``);
    a predictor whose runtime is missing gets ``unavailable`` rows; past the method's budget
    (:meth:`MethodsScaleSettings.budget_of`, :func:`run_estimate`) no run starts and the rest are
    ``skipped``, so that at the largest sizes a slow method may have fewer repeats than the others
    (the rows say so). ``partial`` gets ``before`` and the
    rows so far after every run. ``runner`` (importable, for the child process: :func:`run_own`,
    :func:`run_peer`, :func:`run_method`) runs one repeat; ``check_runtime``: ask a predictor first
    whether its runtime is here. With ``settings.warmup`` the first run the job makes is preceded by
    an untimed one at the smallest size (disk caches of compiled code filled). ``resume``: rows of an interrupted job of the same method and settings
    (:func:`measure_method_to_file`); a (size, repeat) that ran there to ``ok`` or past a cap is taken
    from it instead of being run again.
    """
    from cellquery.predictors import PREDICTORS
    from cellquery.registry import skip_reason

    spec = settings.methods[name]
    n_atlas = max(int(s) for s in settings.sizes)
    reason = None
    if "predictor" in spec and check_runtime:
        try:
            reason = skip_reason(PREDICTORS[spec["predictor"]], "counts")
        except ImportError as error:
            reason = f"cannot import: {error}"
    earlier = {}
    if resume is not None:
        for row in resume.to_dict("records"):
            if row["method"] == name and row["status"] in ("ok", *DID_NOT_FIT):
                earlier[(int(row["size"]), int(row["repeat"]))] = row | dict(reason="" if row["status"] == "ok"
                                                                              else str(row["reason"]))
    stop = None
    rows = []
    measured = []  # (size, mean total s, max peak RSS MB) of each size where every run finished
    budget, spent = settings.budget_of(name), 0.0
    warm = not settings.warmup
    for size in sorted(int(s) for s in settings.sizes):
        if not (stop or reason) and size > int(spec.get("max_size", size)):
            stop = f"above max_size {int(spec['max_size'])}"
        if not (stop or reason) and settings.project_limits:
            stop = projected_stop(measured, size, settings)
        for repeat in range(settings.repeats_of(name)):
            base = dict(method=name, size=size, repeat=repeat, train_s=np.nan, query_s=np.nan, total_s=np.nan,
                        peak_rss_mb=np.nan)
            if reason:
                rows.append(base | dict(status="unavailable", reason=reason))
                continue
            if not stop and budget is not None and (size, repeat) not in earlier:
                estimate = run_estimate(measured, [r["total_s"] for r in rows if r["size"] == size], size)
                if spent + estimate > budget:
                    stop = (f"budget_s {budget:g} spent: {spent:.0f} s of runs, the next estimated at "
                            f"{estimate:.0f} s")
            if stop:
                rows.append(base | dict(status="skipped", reason=stop))
                continue
            if (size, repeat) in earlier:
                row = base | {key: earlier[(size, repeat)][key] for key in COLUMNS[3:]}
                status = row["status"]
            else:
                if not warm:  # untimed, its result dropped (a failure shows in the timed run)
                    smallest = min(int(s) for s in settings.sizes)
                    warmup = run_capped(runner, (atlas, query_path, list(genes), subsample(n_atlas, smallest, 0,
                                        settings.seed), spec, settings.seed), max_seconds=settings.max_seconds,
                                        max_memory_gb=settings.max_memory_gb)
                    warm = True
                    if log is not None:
                        print(f"method={name} warm-up at {smallest} cells: {warmup[0]}", file=log, flush=True)
                cells = subsample(n_atlas, size, repeat, settings.seed)
                started = time.perf_counter()
                status, value, rss = run_capped(
                    runner, (atlas, query_path, list(genes), cells, spec, settings.seed + repeat),
                    max_seconds=settings.max_seconds, max_memory_gb=settings.max_memory_gb)
                row = base | dict(peak_rss_mb=rss, status=status, reason="")
                if status == "ok":
                    row |= {key: value[key] for key in ("train_s", "query_s", "total_s")}
                else:
                    row["reason"] = str(value)
                    spent += time.perf_counter() - started  # a run without its own total counts its wall time
            if status in DID_NOT_FIT:
                stop = f"{status} at {size} cells"
            if status == "ok":
                spent += float(row["total_s"])
            rows.append(row)
            if log is not None:
                print(" ".join(f"{k}={v}" for k, v in row.items()), file=log, flush=True)
            if partial is not None:
                so_far = pd.DataFrame(rows, columns=COLUMNS)
                if before is not None and len(before):
                    so_far = pd.concat([before, so_far], ignore_index=True)
                so_far.to_csv(partial, sep="\t", index=False)
        done = [r for r in rows if r["size"] == size]
        if done and all(r["status"] == "ok" for r in done):
            measured.append((size, float(np.mean([r["total_s"] for r in done])),
                             float(np.nanmax([r["peak_rss_mb"] for r in done]))))
    return pd.DataFrame(rows, columns=COLUMNS)


def projected_cost(points: Sequence[tuple[int, float]], size: int) -> float | None:
    """A lower bound of a cost at reference size ``size``: the line through the two largest measured sizes.

    ``points``: (size, cost) in ascending size. A cost that grows at least
    linearly with the reference (every reference cell is read, embedded and
    searched or trained on for a fixed number of epochs: all methods of the
    config) lies on or above that line (slope clipped at 0); None with fewer than two points.
    """
    if len(points) < 2:
        return None
    (n1, c1), (n2, c2) = points[-2], points[-1]
    return c2 + max((c2 - c1) / (n2 - n1), 0.0) * (size - n2)


def run_estimate(measured: Sequence[tuple[int, float, float]], times_here: Sequence[float], size: int) -> float:
    """The expected seconds of the next run at ``size``: the mean of the runs that finished there, else the
    line through the two sizes below (:func:`projected_cost`), else the largest size measured below; 0 with none."""
    here = [t for t in times_here if np.isfinite(t)]
    if here:
        return float(np.mean(here))
    line = projected_cost([(n, t) for n, t, _ in measured], size)
    if line is not None:
        return line
    return measured[-1][1] if measured else 0.0


def projected_stop(measured: Sequence[tuple[int, float, float]], size: int,
                   settings: MethodsScaleSettings) -> str | None:
    """The reason a method is not run at ``size``: its projected time or memory (:func:`projected_cost`) past a cap.

    A run that cannot fit would only spend ``max_seconds`` before being
    killed; the method's rows at ``size`` and above are then ``skipped`` with this reason.
    """
    if len(measured) < 2:
        return None
    seconds = projected_cost([(n, t) for n, t, _ in measured], size)
    memory = projected_cost([(n, m) for n, _, m in measured], size)
    (n1, t1, m1), (n2, t2, m2) = measured[-2:]
    if seconds > settings.max_seconds:
        return (f"projected {seconds:.0f} s at {size} cells (line through {t1:.0f} s at {n1} and {t2:.0f} s "
                f"at {n2} cells) > max_seconds {settings.max_seconds:g}")
    if memory > settings.max_memory_gb * 1024:
        return (f"projected {memory:.0f} MB at {size} cells (line through {m1:.0f} MB at {n1} and {m2:.0f} MB "
                f"at {n2} cells) > max_memory_gb {settings.max_memory_gb:g}")
    return None


def resume_key(scale: Mapping, name: str, atlas, query_path) -> dict:
    """What the rows of method ``name`` depend on besides the code: its spec, the seed, query size, caps, the atlas files.

    An interrupted job's rows are taken up again (:func:`measure_method_to_file`) only under the same key.
    The atlas and query files stand by path, size and modification time.
    """
    settings = MethodsScaleSettings.from_config(scale)
    files = {str(path): [os.stat(path).st_size, os.stat(path).st_mtime_ns] for path in (atlas, query_path)}
    # which runs are made (max_size, budget_s) does not change a run's result
    spec = {key: value for key, value in settings.methods[name].items() if key not in ("max_size", "budget_s")}
    return json.loads(json.dumps(dict(method=name, spec=spec, seed=settings.seed,
                                      n_query=settings.n_query, max_seconds=settings.max_seconds,
                                      max_memory_gb=settings.max_memory_gb, files=files), default=str))


def measure_method_to_file(scale: Mapping, name: str, atlas, query_path, genes_path, out, *, runner: Callable,
                           log=None) -> None:
    """One workflow job of Fig. 2d: :func:`measure_method` of ``name`` (config ``scale``) written to ``out``.

    The rows so far stand in ``out`` with suffix ``.partial.tsv`` while the job runs, beside
    ``.partial.json`` (:func:`resume_key`). A job that was killed (a cluster's time limit, a node lost)
    and is started again with the same key keeps the runs it had finished (``resume`` of
    :func:`measure_method`); under another key they are run again.
    """
    from cellquery.io import read_table, write_table

    out = Path(out)
    partial, key_path = out.with_suffix(".partial.tsv"), out.with_suffix(".partial.json")
    key = resume_key(scale, name, atlas, query_path)
    resume = None
    if partial.exists() and key_path.exists() and json.loads(key_path.read_text()) == key:
        resume = read_table(partial, required=COLUMNS)
        if log is not None:
            print(f"{name}: resuming from {partial} ({len(resume)} rows)", file=log, flush=True)
    key_path.write_text(json.dumps(key, indent=1))
    genes = read_table(genes_path, required=["gene"])["gene"].tolist()
    table = measure_method(MethodsScaleSettings.from_config(scale), name, atlas, query_path, genes, runner=runner,
                           log=log, partial=partial, resume=resume)
    write_table(table, out)
    partial.unlink(missing_ok=True)
    key_path.unlink(missing_ok=True)


def summarise(table: pd.DataFrame, n_query: int) -> pd.DataFrame:
    """Per method and size, over the runs with status ok: mean and sd (ddof 1; 0 for one run) of the times, cells/s."""
    ok = table[table["status"] == "ok"]
    rows = []
    for (method, size), part in ok.groupby(["method", "size"], sort=False):
        query = part["query_s"].to_numpy(float)
        rows.append(dict(method=method, size=int(size), n_ok=len(part), query_s_mean=query.mean(),
                         query_s_sd=query.std(ddof=1) if len(query) > 1 else 0.0,
                         train_s_mean=part["train_s"].mean(), total_s_mean=part["total_s"].mean(),
                         peak_rss_mb_max=part["peak_rss_mb"].max(), cells_per_s=n_query / query.mean()))
    return pd.DataFrame(rows, columns=SUMMARY_COLUMNS).sort_values(["method", "size"], kind="stable").reset_index(drop=True)


def plot_query_time(summary: pd.DataFrame, path, n_query: int) -> None:
    """Query time (mean +/- sd over repeats) against reference size, log-log, one colour and marker per method;
    a point with fewer repeats than the most any point has is labelled with its n."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from cellquery.plots import distinct_colours, save_png

    markers = "osD^vP*Xh<>p"
    colours = distinct_colours(sorted(summary["method"].unique()))  # one colour per method, past ten too
    fig, ax = plt.subplots(figsize=(8, 4.8))
    full = int(summary["n_ok"].max()) if len(summary) else 0
    labels = []  # (size, query s, text, colour) of points with fewer repeats (a budget, a cut run): say how many
    for j, (method, part) in enumerate(summary.groupby("method", sort=True)):
        part = part.sort_values("size")
        ax.errorbar(part["size"], part["query_s_mean"], yerr=part["query_s_sd"], marker=markers[j % len(markers)],
                    color=colours[method], capsize=3, label=method)
        labels += [(p["size"], p["query_s_mean"], f"n={int(p['n_ok'])}", colours[method])
                   for _, p in part[part["n_ok"] < full].iterrows()]
    for size in sorted({label[0] for label in labels}):
        # labels of near points at one size are stacked downwards instead of printed over each other
        stack, last = 0, None
        for _, y, text, colour in sorted((lb for lb in labels if lb[0] == size), key=lambda lb: -lb[1]):
            stack = stack + 1 if last is not None and last - np.log10(y) < 0.15 else 0
            last = np.log10(y)
            ax.annotate(text, (size, y), textcoords="offset points", xytext=(5, -9 - 9 * stack), fontsize=7, color=colour)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.margins(x=0.1)  # room for the n labels right of the largest size
    ax.set_xlabel("reference size (cells)")
    ax.set_ylabel(f"query time of {n_query:,} cells (s)")
    ax.set_title("Query time vs reference size (mean ± sd over repeats)")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0, fontsize=8)
    fig.tight_layout()
    save_png(fig, path)
