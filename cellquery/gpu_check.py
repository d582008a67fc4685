"""``python -m cellquery.gpu_check``: each GPU path at a small size against its CPU twin, one JSON line per path.

Paths: faiss ``Flat`` and ``IVF{nlist},PQ8`` (recall@k against the exact neighbours of
sklearn's brute force, and agreement of the 10-NN majority label between the GPU and
the CPU index), and one epoch of scVI (the training loss on GPU and on CPU). A path
whose library sees no GPU prints ``{"path": ..., "gpu": false, "reason": ...}``;
the command always exits 0 unless a GPU path itself fails.
"""

from __future__ import annotations

import json
import sys
import time

import numpy as np

from cellquery import device

K = 10


def _clustered(n: int, dim: int, n_types: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` points around ``n_types`` Gaussian centres, with their centre as label."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=4.0, size=(n_types, dim))
    labels = rng.integers(n_types, size=n)
    return (centres[labels] + rng.normal(size=(n, dim))).astype(np.float32), labels


def _majority(labels: np.ndarray, idx: np.ndarray) -> np.ndarray:
    return np.array([np.bincount(labels[row]).argmax() for row in idx])


def faiss_path(factory: str, n_ref: int = 20_000, n_query: int = 1_000, dim: int = 32) -> dict:
    """One faiss index on the GPU and on the CPU: recall@K against brute force, label agreement, times."""
    from sklearn.neighbors import NearestNeighbors

    from cellquery.index import build_index

    path = f"faiss {factory}"
    if device.faiss_gpus() == 0:
        return {"path": path, "gpu": False, "reason": "faiss.get_num_gpus() == 0"}
    ref, ref_labels = _clustered(n_ref, dim, 20, seed=0)
    qry, _ = _clustered(n_query, dim, 20, seed=1)
    exact = NearestNeighbors(n_neighbors=K).fit(ref).kneighbors(qry, return_distance=False)
    params = {"factory": factory, "nprobe": 16} if "IVF" in factory else {"factory": factory}
    found, seconds = {}, {}
    for where, gpus in (("cpu", 0), ("gpu", 1)):
        device.request_gpu(gpus, "gpu_check", "faiss")
        start = time.perf_counter()
        index = build_index("faiss", ref, dict(params), seed=0)
        found[where] = index.search(qry, K)[1]
        seconds[where] = round(time.perf_counter() - start, 3)
    device.reset()
    recall = {w: float(np.mean([len(set(f) & set(e)) / K for f, e in zip(idx, exact)])) for w, idx in found.items()}
    agreement = float(np.mean(_majority(ref_labels, found["gpu"]) == _majority(ref_labels, found["cpu"])))
    return {"path": path, "gpu": True, "n_ref": n_ref, "n_query": n_query, "k": K, "recall_gpu": recall["gpu"],
            "recall_cpu": recall["cpu"], "label_agreement": agreement, "seconds_gpu": seconds["gpu"],
            "seconds_cpu": seconds["cpu"]}


def scvi_path(n_cells: int = 2_000, n_genes: int = 500) -> dict:
    """One epoch of scVI on the GPU and on the CPU: the last training loss of each, times."""
    if not device.torch_cuda():
        return {"path": "scvi 1 epoch", "gpu": False,
                "reason": "torch not installed" if device.torch_cuda() is None else "torch.cuda.is_available() False"}
    import scvi

    from cellquery.data.simulate import simulate_dataset
    from cellquery.embed.scvi import train_kwargs

    adata = simulate_dataset(n_cells, n_genes=n_genes, seed=0)
    adata.X = adata.layers["counts"] if "counts" in adata.layers else adata.X
    loss, seconds = {}, {}
    for where, gpus in (("cpu", 0), ("gpu", 1)):
        device.request_gpu(gpus, "gpu_check", "torch")
        scvi.settings.seed = 0
        data = adata.copy()
        scvi.model.SCVI.setup_anndata(data)
        model = scvi.model.SCVI(data)
        start = time.perf_counter()
        model.train(**train_kwargs(1, 128))
        seconds[where] = round(time.perf_counter() - start, 3)
        loss[where] = float(model.history["elbo_train"].iloc[-1, 0])
    device.reset()
    return {"path": "scvi 1 epoch", "gpu": True, "n_cells": n_cells, "elbo_gpu": loss["gpu"], "elbo_cpu": loss["cpu"],
            "seconds_gpu": seconds["gpu"], "seconds_cpu": seconds["cpu"]}


def main(out=sys.stdout) -> int:
    for check in (lambda: faiss_path("Flat"), lambda: faiss_path("IVF{nlist},PQ8"), scvi_path):
        print(json.dumps(check()), file=out, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
