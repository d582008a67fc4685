"""Peak memory and wall time of the chunked preprocess -> HVG -> PCA on an atlas-sized simulated h5ad.

``python -m cellquery.bench.backed --n-cells 1000000 --n-genes 2000 --out DIR``
prints ONE JSON line: per stage (``generate``, ``preprocess``, ``hvg``, ``pca``)
the wall time and the peak resident memory within the stage (``psutil``
sampling every :data:`SAMPLE_S` s), the process's ``ru_maxrss``, and the peak
over preprocess -> PCA (the figure held against the 6 GB target).
``--in-memory-baseline`` then runs the in-memory path (``prepare_group``,
``select_hvg``, ``pca.embed``) on the same files in the same process (stages
``memory_*``; the stage peaks include what the process holds already), and
says whether it chose the same genes and, when the chunked PCA was fitted on
every cell (``--fit-cells`` >= ``--n-cells``), the largest embedding difference
up to sign. ``--scvi-epochs N`` adds stage ``scvi``: the chunked scVI embedding
(:func:`cellquery.embed.scvi.embed_backed`, donors as batches) trained for N
epochs on ``--fit-cells`` reference cells (and N query-surgery epochs), every cell
encoded chunk by chunk (not part of the preprocess -> PCA peak).

Generation (stage ``generate``): the workflow's own path for a simulated dataset above
``preprocess.backed_above_cells`` (:func:`cellquery.data.simulate.write_simulated`: one
world, two studies of two donors, counts appended to a CSR h5ad chunk by chunk as they
are drawn; the full matrix, dense or sparse, is never in memory). A query of
``--n-query`` cells comes from a third study. Both files are the pipeline's loaded
datasets (``<dataset>:<cell>`` names, ``obs["dataset"]``, ``uns["values"]``).
The stages then run as the workflow runs them for a large group
(:mod:`cellquery.backed`). Files are written under ``--out`` and removed
unless ``--keep``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import h5py
import numpy as np
import psutil

from cellquery.backed import (
    CHUNK_CELLS, FIT_CELLS, pca_backed, prepare_group_backed, read_backed, select_hvg_backed,
)
from cellquery.data.simulate import write_simulated

SAMPLE_S = 0.05


class PeakSampler:
    """The largest resident set size of this process seen since :meth:`reset` (a sampling thread)."""

    def __init__(self) -> None:
        self._proc = psutil.Process()
        self._peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self._peak = max(self._peak, self._proc.memory_info().rss)
            time.sleep(SAMPLE_S)

    def reset(self) -> None:
        self._peak = self._proc.memory_info().rss

    def peak_mb(self) -> float:
        return max(self._peak, self._proc.memory_info().rss) / 2**20

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def run(n_cells: int, n_genes: int, out: Path, *, n_query: int = 10_000, chunk_cells: int = CHUNK_CELLS,
        fit_cells: int = FIT_CELLS, n_top_genes: int = 1000, n_comps: int = 32,
        seed: int = 0, keep: bool = False, in_memory_baseline: bool = False, scvi_epochs: int = 0) -> dict:
    out.mkdir(parents=True, exist_ok=True)
    sampler = PeakSampler()
    stages: dict[str, dict] = {}

    @contextmanager
    def stage(name: str):
        sampler.reset()
        t0 = time.perf_counter()
        yield
        stages[name] = {"wall_s": round(time.perf_counter() - t0, 1), "peak_rss_mb": round(sampler.peak_mb(), 1)}

    ref_path, qry_path = out / "reference_counts.h5ad", out / "query_counts.h5ad"
    with stage("generate"):
        write_simulated(ref_path, name="atlas", n_cells=n_cells, n_genes=n_genes, studies=("study1", "study2"), seed=seed)
        write_simulated(qry_path, name="query", n_cells=n_query, n_genes=n_genes, studies=("study3",), seed=seed + 1)
    with h5py.File(ref_path, "r") as f:
        nnz = f["X/data"].shape[0]
    pre_ref, pre_qry = out / "reference.h5ad", out / "query.h5ad"
    with stage("preprocess"):
        ref, qry = read_backed(ref_path, obsm=True), read_backed(qry_path, obsm=True)
        n_ref, n_qry = prepare_group_backed(
            [(ref, np.ones(ref.n_obs, dtype=bool))], [(qry, np.ones(qry.n_obs, dtype=bool))],
            out_reference=pre_ref, out_query=pre_qry, reference_sources=["atlas"], query_sources=["query"],
            label_key="cell_type", batch_keys=["donor"], ontology_key="cell_ontology_id", min_genes=20, target_sum=1e4,
            seed=seed, chunk_cells=chunk_cells,
        )
        ref.close()
        qry.close()
    with stage("hvg"):
        ref = read_backed(pre_ref)
        genes = select_hvg_backed(ref, batch_key="donor", n_top_genes=n_top_genes, chunk_cells=chunk_cells)["gene"].tolist()
    with stage("pca"):
        qry = read_backed(pre_qry)
        ref_emb, qry_emb = pca_backed(ref, qry, genes, n_comps=n_comps, seed=seed, fit_cells=fit_cells, chunk_cells=chunk_cells)
        np.save(out / "reference_pca.npy", ref_emb)
        ref.close()
        qry.close()
    scvi_shape = None
    if scvi_epochs > 0:
        from cellquery.embed.scvi import embed_backed

        import scvi  # noqa: F401 (imported before the stage: its import is not the stage's memory)

        with stage("scvi"):
            scvi_ref, _ = embed_backed(pre_ref, pre_qry, genes, seed=seed, fit_cells=fit_cells, chunk_cells=chunk_cells,
                                       batch_key="donor", max_epochs=scvi_epochs, query_epochs=scvi_epochs)
        scvi_shape = list(scvi_ref.shape)
    baseline = {}
    if in_memory_baseline:
        baseline = _in_memory(ref_path, qry_path, stage, seed=seed, n_top_genes=n_top_genes, n_comps=n_comps)
        baseline["same_hvg"] = baseline.pop("genes") == genes
        if fit_cells >= n_cells:  # both PCAs fitted on every cell: the same embedding up to sign
            mem = baseline.pop("embedding")
            signs = np.sign((mem * ref_emb).sum(axis=0))
            baseline["max_abs_embedding_diff"] = float(np.abs(ref_emb * signs - mem).max())
        baseline.pop("embedding", None)
    sampler.stop()
    sizes = {p.name: round(p.stat().st_size / 2**20, 1) for p in (ref_path, pre_ref)}
    if not keep:
        shutil.rmtree(out)
    steps = ("preprocess", "hvg", "pca")
    if in_memory_baseline:
        memory = ("memory_preprocess", "memory_hvg", "memory_pca")
        baseline["preprocess_to_pca_wall_s"] = round(sum(stages[s]["wall_s"] for s in memory), 1)
        baseline["preprocess_to_pca_peak_rss_mb"] = max(stages[s]["peak_rss_mb"] for s in memory)
    return {
        "n_cells": n_cells, "n_genes": n_genes, "n_query": n_query, "nnz": int(nnz), "chunk_cells": chunk_cells,
        "fit_cells": fit_cells, "n_top_genes": n_top_genes, "n_comps": n_comps, "n_reference_after_qc": n_ref,
        "n_query_after_qc": n_qry, "n_hvg": len(genes), "embedding_shape": list(ref_emb.shape),
        **({"scvi_embedding_shape": scvi_shape} if scvi_shape else {}),
        "stages": stages,
        "preprocess_to_pca_wall_s": round(sum(stages[s]["wall_s"] for s in steps), 1),
        "preprocess_to_pca_peak_rss_mb": max(stages[s]["peak_rss_mb"] for s in steps),
        "ru_maxrss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "file_mb": sizes, "cpus": os.cpu_count(),
        **({"in_memory": baseline} if in_memory_baseline else {}),
    }


def _in_memory(ref_path: Path, qry_path: Path, stage, *, seed: int, n_top_genes: int, n_comps: int) -> dict:
    """The in-memory path (prepare_group, select_hvg, pca.embed) on the same files, timed as stages ``memory_*``."""
    from cellquery.embed.pca import embed
    from cellquery.hvg import select_hvg
    from cellquery.io import read_h5ad
    from cellquery.preprocess import prepare_group

    with stage("memory_preprocess"):
        ref, qry = prepare_group([read_h5ad(ref_path)], [read_h5ad(qry_path)], reference_sources=["atlas"], query_sources=["query"],
                                 label_key="cell_type", batch_keys=["donor"], ontology_key="cell_ontology_id", min_genes=20, target_sum=1e4)
    with stage("memory_hvg"):
        genes = select_hvg(ref, batch_key="donor", n_top_genes=n_top_genes)["gene"].tolist()
    with stage("memory_pca"):
        ref_emb, _ = embed(ref, qry, genes, seed=seed, n_comps=n_comps)
    return {"genes": genes, "embedding": ref_emb}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m cellquery.bench.backed", description=__doc__.splitlines()[0])
    ap.add_argument("--n-cells", type=int, default=1_000_000)
    ap.add_argument("--n-genes", type=int, default=2000)
    ap.add_argument("--n-query", type=int, default=10_000)
    ap.add_argument("--out", type=Path, required=True, help="folder for the generated and preprocessed files")
    ap.add_argument("--chunk-cells", type=int, default=CHUNK_CELLS)
    ap.add_argument("--fit-cells", type=int, default=FIT_CELLS)
    ap.add_argument("--n-top-genes", type=int, default=1000)
    ap.add_argument("--n-comps", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--keep", action="store_true", help="keep the files under --out")
    ap.add_argument("--scvi-epochs", type=int, default=0, help="add stage scvi (chunked scVI) with this many epochs; 0: none")
    ap.add_argument("--in-memory-baseline", action="store_true",
                    help="then run the in-memory path on the same files (stages memory_*; needs the whole group in memory)")
    a = ap.parse_args(argv)
    result = run(a.n_cells, a.n_genes, a.out, n_query=a.n_query, chunk_cells=a.chunk_cells, fit_cells=a.fit_cells,
                 n_top_genes=a.n_top_genes, n_comps=a.n_comps, seed=a.seed, keep=a.keep,
                 in_memory_baseline=a.in_memory_baseline, scvi_epochs=a.scvi_epochs)
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
