"""Progress lines of long work (cellquery.progress) in the job's log: counts, elapsed time, ETA."""

from __future__ import annotations

import io
import logging
import re
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from cellquery import progress as prog

LINE = re.compile(r"^(?P<task>.+): (?P<done>\d+)(?:/(?P<total>\d+))? (?P<unit>[a-z ]+) done, "
                  r"elapsed (?P<elapsed>\d+:\d\d:\d\d)(?:, ETA (?P<eta>\d+:\d\d:\d\d))?$")


def lines(caplog, task: str) -> list[dict]:
    """The parsed progress lines of ``task`` captured so far."""
    out = []
    for record in caplog.records:
        if record.name == "cellquery.progress":
            match = LINE.match(record.getMessage())
            assert match, record.getMessage()
            if match["task"] == task:
                out.append(match.groupdict())
    return out


def counts(caplog, task: str) -> list[tuple[int, int]]:
    return [(int(m["done"]), int(m["total"])) for m in lines(caplog, task)]


@pytest.fixture
def every_step(monkeypatch):
    """A line after every step (the default is at most one every 30 s, besides the first and last)."""
    monkeypatch.setattr(prog, "EVERY_S", 0.0)


def test_progress_lines_elapsed_and_eta_on_a_hand_clock(caplog):
    caplog.set_level(logging.INFO, logger="cellquery.progress")
    now = [100.0]
    counter = prog.Progress("task", 10, "chunks", every_s=30, clock=lambda: now[0])
    for t in [10, 20, 45, 50, 80, 90, 100, 130, 140, 200]:  # one chunk done at each of these seconds
        now[0] = 100.0 + t
        counter.update()
    got = [(int(m["done"]), m["elapsed"], m["eta"]) for m in lines(caplog, "task")]
    # first step; then >= 30 s after the last line (45 s: 3 done, 80 s: 5, 130 s: 8); last step
    # ETA = elapsed / done * (10 - done): 10/1*9 = 90, 45/3*7 = 105, 80/5*5 = 80, 130/8*2 = 32.5 -> 32, 0
    assert got == [(1, "0:00:10", "0:01:30"), (3, "0:00:45", "0:01:45"), (5, "0:01:20", "0:01:20"),
                   (8, "0:02:10", "0:00:32"), (10, "0:03:20", "0:00:00")]
    unknown = prog.Progress("open-ended", None, "steps", every_s=0, clock=lambda: now[0])
    unknown.update(3)
    assert [(m["done"], m["total"], m["eta"]) for m in lines(caplog, "open-ended")] == [("3", None, None)]


def test_lines_go_to_the_stderr_of_the_moment(monkeypatch, every_step):
    """A workflow script sends stderr to the job's log after cellquery.progress was imported."""
    log_file = io.StringIO()
    monkeypatch.setattr(sys, "stderr", log_file)
    for _ in prog.progress(range(3), "redirected", unit="items"):
        pass
    written = log_file.getvalue().splitlines()
    assert [line.split(" ", 2)[2] for line in written if "redirected" in line] == [
        f"redirected: {i}/3 items done, elapsed 0:00:00, ETA 0:00:00" for i in (1, 2, 3)]


def test_gnn_training_logs_every_epoch(caplog, every_step):
    torch = pytest.importorskip("torch")
    import scipy.sparse as sp

    from cellquery.spatial.gnn import build_model, fine_tune, pretrain_masked, torch_graph

    caplog.set_level(logging.INFO, logger="cellquery.progress")
    rng = np.random.default_rng(0)
    x = rng.random((30, 8)).astype(np.float32)
    adjacency = sp.random(30, 30, density=0.1, random_state=0, format="csr")
    graph = torch_graph(((adjacency + adjacency.T) > 0).astype(np.float32))
    model = build_model(8, hidden=8, latent=4, seed=0)
    assert len(pretrain_masked(model, x, graph, epochs=3)) == 3
    fine_tune(model, x, graph, rng.integers(0, 2, 30), np.ones(30, bool), n_classes=2, epochs=4)
    assert counts(caplog, "gnn masked pretraining") == [(1, 3), (2, 3), (3, 3)]
    assert counts(caplog, "gnn fine-tuning") == [(i, 4) for i in range(1, 5)]
    assert torch  # (imported for the skip)


def test_gnn_training_logs_first_and_last_epoch_by_default(caplog):
    pytest.importorskip("torch")
    import scipy.sparse as sp

    from cellquery.spatial.gnn import build_model, pretrain_masked, torch_graph

    caplog.set_level(logging.INFO, logger="cellquery.progress")
    x = np.random.default_rng(1).random((20, 5)).astype(np.float32)
    graph = torch_graph(sp.identity(20, format="csr", dtype=np.float32))
    pretrain_masked(build_model(5, hidden=4, latent=2), x, graph, epochs=5)  # well under 30 s
    assert counts(caplog, "gnn masked pretraining") == [(1, 5), (5, 5)]


def test_cellblast_logs_models_done(caplog):
    from cellquery.predictors.cellblast import train_models

    caplog.set_level(logging.INFO, logger="cellquery.progress")
    fitted = []
    cb = SimpleNamespace(directi=SimpleNamespace(fit_DIRECTi=lambda ref, **kw: fitted.append(kw["random_seed"]) or kw["path"]))
    models = train_models(cb, None, ["g"], None, [7, 8, 9], "/nowhere", epoch=1)
    assert fitted == [7, 8, 9] and models == [f"/nowhere/model{i}" for i in range(3)]
    assert counts(caplog, "Cell BLAST DIRECTi training") == [(1, 3), (2, 3), (3, 3)]


def test_scvi_training_logs_epochs_through_its_lightning_callback(caplog, every_step):
    pytest.importorskip("scvi")
    import anndata as ad
    import scvi

    from cellquery.embed.scvi import train_kwargs

    caplog.set_level(logging.INFO, logger="cellquery.progress")
    counts_matrix = np.random.default_rng(0).poisson(2.0, (60, 20)).astype(np.float32)
    adata = ad.AnnData(counts_matrix)
    scvi.model.SCVI.setup_anndata(adata)
    model = scvi.model.SCVI(adata, n_hidden=8, n_latent=2, n_layers=1)
    model.train(**train_kwargs(3, 32, "scVI reference training"))
    assert counts(caplog, "scVI reference training") == [(1, 3), (2, 3), (3, 3)]
    assert len(model.history["elbo_train"]) == 3  # the callback counted the epochs scvi-tools trained


def test_scale_benchmark_logs_cells_added_per_chunk_and_search_settings(caplog, every_step):
    from cellquery.bench.knn import run_benchmark

    caplog.set_level(logging.INFO, logger="cellquery.progress")
    rows = run_benchmark("ivfflat", 2500, n_query=20, dim=8, k=5, threads=1, chunk=1000, max_train=1000,
                         params={"nlist": 16}, search_sweep=[{"nprobe": 1}, {"nprobe": 4}])
    assert len(rows) == 2
    assert counts(caplog, "index build (faiss, 2500 cells)") == [(1000, 2500), (2000, 2500), (2500, 2500)]
    assert counts(caplog, "search settings (ivfflat, 2500 cells)") == [(1, 2), (2, 2)]


@pytest.mark.parametrize("backend,params", [("faiss", {"factory": "Flat"}), ("gemm", {})])
def test_build_index_adds_in_chunks_with_progress_and_the_same_neighbours(caplog, every_step, backend, params):
    from cellquery.index import build_index

    caplog.set_level(logging.INFO, logger="cellquery.progress")
    rng = np.random.default_rng(3)
    X, Q = rng.normal(size=(100, 6)).astype(np.float32), rng.normal(size=(7, 6)).astype(np.float32)
    chunked = build_index(backend, X, params, add_chunk=40)
    assert counts(caplog, f"index build ({backend}, 100 cells)") == [(40, 100), (80, 100), (100, 100)]
    whole = build_index(backend, X, params)  # 100 rows <= ADD_CHUNK: one add, one line
    assert counts(caplog, f"index build ({backend}, 100 cells)")[3:] == [(100, 100)]
    d_chunked, i_chunked = chunked.search(Q, 5)
    d_whole, i_whole = whole.search(Q, 5)
    brute = np.argsort(((Q[:, None, :] - X[None, :, :]) ** 2).sum(-1), axis=1)[:, :5]
    np.testing.assert_array_equal(i_chunked, brute)
    np.testing.assert_array_equal(i_chunked, i_whole)
    np.testing.assert_allclose(d_chunked, d_whole, rtol=1e-6)
