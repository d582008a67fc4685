"""The GPU path: a job uses the GPU it asked for (config gpu), or stops with one line when it sees none.

No GPU is available where these tests run: faiss's GPU API (get_num_gpus,
StandardGpuResources, index_cpu_to_gpu, index_gpu_to_cpu, GpuParameterSpace) and
torch.cuda.is_available are stubbed at the boundary, so the tests check that the
GPU code path is taken and what it hands to faiss and torch, not a GPU's results.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import faiss
import numpy as np
import pytest
import yaml
from sklearn.neighbors import NearestNeighbors

from cellquery import device
from cellquery.errors import InputError
from cellquery.index import build_index, load_index

REPO = Path(__file__).resolve().parents[1]


def no_gpu_line(rule: str) -> str:
    torch = "torch.cuda.is_available() False" if device.torch_cuda() is not None else "torch not installed"
    return f"rule {rule} asked for a GPU (config gpu: 1) but none is visible: faiss.get_num_gpus() == 0, {torch}"


@pytest.fixture(autouse=True)
def cpu_request():
    device.reset()
    yield
    device.reset()


@pytest.fixture
def fake_faiss_gpu(monkeypatch):
    """faiss's GPU API stubbed: two GPUs; moving an index records the call and keeps the CPU index."""
    class Calls(list):
        resource_class = None

    calls = Calls()

    class StandardGpuResources:
        pass

    class GpuIndex:
        """Stands for a faiss GPU index: it searches as the CPU index, but faiss's CPU-side helpers
        (extract_index_ivf, ParameterSpace) do not take it, as they do not take a GpuIndexIVFFlat."""

        def __init__(self, cpu):
            object.__setattr__(self, "cpu", cpu)

        def __getattr__(self, name):
            if name == "this":  # SWIG's pointer: without it faiss's functions refuse the object
                raise AttributeError(name)
            return getattr(self.cpu, name)

        def __setattr__(self, name, value):
            setattr(self.cpu, name, value)

    class GpuParameterSpace:
        def set_index_parameter(self, index, name, value):
            assert isinstance(index, GpuIndex)
            setattr(index, name, value)

    def index_cpu_to_gpu(res, gpu, index):
        calls.append(("to_gpu", res, gpu, index, index.is_trained))
        return GpuIndex(index)

    def index_gpu_to_cpu(index):
        calls.append(("to_cpu", index))
        return index.cpu

    monkeypatch.setattr(faiss, "get_num_gpus", lambda: 2)
    monkeypatch.setattr(faiss, "StandardGpuResources", StandardGpuResources, raising=False)
    monkeypatch.setattr(faiss, "index_cpu_to_gpu", index_cpu_to_gpu, raising=False)
    monkeypatch.setattr(faiss, "index_gpu_to_cpu", index_gpu_to_cpu, raising=False)
    monkeypatch.setattr(faiss, "GpuParameterSpace", GpuParameterSpace, raising=False)
    calls.resource_class = StandardGpuResources
    return calls


def points(n, d, seed):
    return np.random.default_rng(seed).normal(size=(n, d)).astype(np.float32)


def brute_force(ref, qry, k):
    dist, idx = NearestNeighbors(n_neighbors=k).fit(ref).kneighbors(qry)
    return dist, idx


def test_without_a_request_faiss_and_torch_stay_on_the_cpu(fake_faiss_gpu):
    device.request_gpu(0, "build_index", "faiss")
    assert not device.use_faiss_gpu() and device.torch_accelerator() == "cpu"
    build_index("faiss", points(200, 8, 0), {"factory": "Flat"})
    assert fake_faiss_gpu == []  # faiss reports GPUs, but gpu: 0 never moves an index
    device.request_gpu(1, "predict", "torch")  # a GPU asked for torch: faiss stays on the CPU
    build_index("faiss", points(200, 8, 0), {"factory": "Flat"})
    assert fake_faiss_gpu == []


def test_a_faiss_job_that_asked_for_a_gpu_builds_and_searches_on_it(fake_faiss_gpu, tmp_path):
    ref, qry = points(400, 8, 1), points(50, 8, 2)
    device.request_gpu(1, "build_index", "faiss")
    index = build_index("faiss", ref, {"factory": "IVF{nlist},Flat", "nlist": 4, "nprobe": 4})
    moves = [c for c in fake_faiss_gpu if c[0] == "to_gpu"]
    assert len(moves) == 1
    _, res, gpu, moved, trained = moves[0]
    assert isinstance(res, fake_faiss_gpu.resource_class) and gpu == 0
    assert faiss.extract_index_ivf(moved).nlist == 4 and not trained  # moved before training (trains on the GPU)
    dist, idx = index.search(qry, 5)
    want_dist, want_idx = brute_force(ref, qry, 5)  # nprobe = nlist: the IVF search is exact
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_allclose(dist, want_dist, rtol=1e-4, atol=1e-4)

    # the saved file holds the CPU index (index_gpu_to_cpu), which a CPU job loads
    index.save(tmp_path / "index.bin")
    assert [c[0] for c in fake_faiss_gpu] == ["to_gpu", "to_cpu"]
    device.reset()
    cpu_idx = load_index(tmp_path / "index.bin").search(qry, 5)[1]
    np.testing.assert_array_equal(cpu_idx, want_idx)
    assert len(fake_faiss_gpu) == 2
    # a query job that asked for a GPU moves the loaded index to it
    device.request_gpu(1, "query_index", "faiss")
    gpu_idx = load_index(tmp_path / "index.bin").search(qry, 5)[1]
    np.testing.assert_array_equal(gpu_idx, want_idx)
    assert [c[0] for c in fake_faiss_gpu] == ["to_gpu", "to_cpu", "to_gpu"]


def test_a_faiss_job_that_asked_for_a_gpu_but_sees_none_stops_with_one_line():
    assert faiss.get_num_gpus() == 0  # the CPU build
    device.request_gpu(1, "build_index", "faiss")
    with pytest.raises(InputError) as err:
        build_index("faiss", points(100, 4, 0), {"factory": "Flat"})
    assert str(err.value) == no_gpu_line("build_index")
    assert "\n" not in str(err.value)


def test_torch_jobs_use_cuda_when_they_asked_for_it(monkeypatch):
    torch = pytest.importorskip("torch")
    from cellquery.embed.scvi import train_kwargs
    from cellquery.predictors.cellblast import use_device

    cb = SimpleNamespace(config=SimpleNamespace(DEVICE=None), directi=SimpleNamespace(DEVICE=None))
    assert train_kwargs(3, 128)["accelerator"] == "cpu"
    use_device(cb)
    assert cb.config.DEVICE == cb.directi.DEVICE == torch.device("cpu")

    device.request_gpu(1, "embed", "torch")
    with pytest.raises(InputError) as err:  # no CUDA here
        train_kwargs(3, 128)
    assert str(err.value) == no_gpu_line("embed")
    with pytest.raises(InputError):
        use_device(cb)

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)  # the boundary: torch sees a GPU
    kwargs = train_kwargs(3, 128)
    assert (kwargs["accelerator"], kwargs["devices"]) == ("gpu", 1)
    use_device(cb)
    assert cb.config.DEVICE == cb.directi.DEVICE == torch.device("cuda")


def test_request_names_a_known_library():
    with pytest.raises(ValueError):
        device.request_gpu(1, "embed", "jax")


def test_a_job_with_gpu_1_on_a_machine_without_one_fails_with_one_console_line(tmp_path):
    """One small build_index job through snakemake with --config gpu=1: its PCA embedding (no GPU code)
    runs, the index job stops with the one line on the console and writes no index."""
    from test_bad_inputs import base_config, make

    make(60, "ABC", seed=1).write_h5ad(tmp_path / "ref.h5ad")
    make(40, "ABD", seed=2).write_h5ad(tmp_path / "qry.h5ad")
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(base_config()))
    model = "results/g/embeddings/pca/seed0/model0"
    target = f"{model}/flat/shard0/index.bin"
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", target, "-s", str(REPO / "Snakefile"), "-d", str(tmp_path), "-c1",
         "--config", "gpu=1", "--configfile", str(tmp_path / "config.yaml")],
        capture_output=True, text=True, cwd=tmp_path, timeout=600,
    )
    console = proc.stdout + proc.stderr
    assert proc.returncode != 0, console[-3000:]
    assert f"InputError: {no_gpu_line('build_index')}" in console.splitlines(), console[-3000:]
    assert (tmp_path / model / "reference_embedding.h5ad").is_file()  # embed ran (gpu=1, no GPU code in PCA)
    assert not (tmp_path / target).exists()


def test_gpu_check_without_a_gpu_says_so_and_exits_0():
    proc = subprocess.run([sys.executable, "-m", "cellquery.gpu_check"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [line["path"] for line in lines] == ["faiss Flat", "faiss IVF{nlist},PQ8", "scvi 1 epoch"]
    assert all(line["gpu"] is False for line in lines)
    assert lines[0]["reason"] == "faiss.get_num_gpus() == 0"


def test_gpu_check_compares_the_faiss_gpu_path_with_brute_force(fake_faiss_gpu):
    """With the GPU API stubbed (the 'GPU' index is the CPU one), the check's recall and agreement are exact."""
    from cellquery.gpu_check import faiss_path

    line = faiss_path("Flat", n_ref=2_000, n_query=100, dim=8)
    assert line["gpu"] is True and line["recall_gpu"] == line["recall_cpu"] == 1.0 and line["label_agreement"] == 1.0
    assert [c[0] for c in fake_faiss_gpu] == ["to_gpu"]  # only the run that asked for the GPU moved its index
    assert not device.requested("faiss")  # the check leaves no request behind


def test_gpu_check_scvi_path_runs_both_twins(monkeypatch):
    """The scVI check's code on this CPU: torch said to see a GPU, the 'GPU' run trained on the CPU
    (train_kwargs' accelerator stubbed); the same seed gives the same loss on both."""
    pytest.importorskip("scvi")
    import cellquery.embed.scvi as scvi_embed
    from cellquery.gpu_check import scvi_path

    monkeypatch.setattr(device, "torch_cuda", lambda: True)
    monkeypatch.setattr(scvi_embed, "torch_accelerator", lambda: "cpu")
    line = scvi_path(n_cells=300, n_genes=500)
    assert line["gpu"] is True and np.isfinite(line["elbo_cpu"])
    assert line["elbo_gpu"] == pytest.approx(line["elbo_cpu"], rel=1e-5)
