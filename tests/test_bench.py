"""Scale benchmark: synthetic generator, exact GEMM search, recall / vote scoring, CLI."""

import json
import subprocess
import sys

import numpy as np
import pytest

from cellquery.bench import synthetic as syn
from cellquery.bench.knn import FIELDS, majority_vote, recall_at_k, run_benchmark
from cellquery.bench.scale import estimate_mem_mb
from cellquery.errors import InputError
from cellquery.index import load_index
from cellquery.index.gemm_backend import GemmIndex, knn_gemm
from test_index import brute_force

N_CROSS = syn.BLOCK + 4464  # crosses the first block boundary


@pytest.fixture(scope="module")
def world():
    return syn.make_world(16, seed=3)


@pytest.fixture(scope="module")
def ref(world):
    return syn.reference_sample(N_CROSS, 16, 3, world=world)


def test_generator_deterministic_and_chunk_invariant(world, ref):
    X, L = ref
    assert X.dtype == np.float32 and X.shape == (N_CROSS, 16) and L.shape == (N_CROSS,)
    for chunk in (7_001, syn.BLOCK, 1_000_000):
        parts = list(syn.iter_reference_chunks(N_CROSS, 16, 3, chunk=chunk, world=world))
        assert all(p[0].shape[0] <= chunk for p in parts)
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), X)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), L)
    # a fresh world from the seed gives the same rows; a prefix does not depend on n
    X2, L2 = syn.reference_sample(1000, 16, 3)
    np.testing.assert_array_equal(X2, X[:1000])
    np.testing.assert_array_equal(L2, L[:1000])
    X3, _ = syn.reference_sample(1000, 16, 4)
    assert not np.allclose(X3, X[:1000])


def test_sizes_skewed_with_rare_types(world, ref):
    _, L = ref
    p = world.reference_p[: world.n_types]
    seen = p > 0
    assert seen.sum() == world.n_types - len(world.unseen)
    assert (p[seen] < 1e-3).sum() >= 10  # types under 0.1 % of the cells
    assert p.max() > 100 * p[seen].min()
    counts = np.bincount(L, minlength=world.n_labels)
    frac = counts / counts.sum()
    big = int(np.argmax(p))
    assert abs(frac[big] - p[big]) < 0.01  # sampled abundances follow the law
    assert counts[world.unseen].sum() == 0  # unseen types have no reference cells
    traj = frac[world.n_types :].sum()
    assert 0.03 < traj < 0.07  # trajectory cells: 5 % by default


def test_queries_include_unseen_types(world, ref):
    Q, QL = syn.make_queries(5000, 16, 3, world=world)
    assert Q.shape == (5000, 16) and Q.dtype == np.float32
    unseen = np.isin(QL, world.unseen)
    assert 0.07 < unseen.mean() < 0.13
    assert len(np.unique(QL[unseen])) >= 5
    X, _ = ref
    assert not np.array_equal(Q[:10], X[:10])  # queries are their own stream
    # unseen-type queries lie farther from the reference than seen-type ones
    D, _ = knn_gemm(Q[:2000], [X[:20000]], 1)
    assert np.median(D[:2000][unseen[:2000], 0]) > np.median(D[:2000][~unseen[:2000], 0])


def test_world_bad_input():
    with pytest.raises(InputError, match="n_unseen"):
        syn.make_world(8, n_types=5, n_unseen=5)
    with pytest.raises(InputError, match="latent_dim"):
        syn.make_world(4, latent_dim=6)
    with pytest.raises(InputError, match="chunk"):
        next(syn.iter_reference_chunks(10, 8, chunk=0))


def test_knn_gemm_matches_brute_force():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3000, 12)).astype(np.float32)
    X[2000] = X[17]  # an exact tie: the smaller id must come first
    Q = np.vstack([rng.normal(size=(57, 12)), X[17:18]]).astype(np.float32)
    De, Ie = brute_force(X, Q, 9)
    for threads, qb, rb in ((1, 256, 4096), (2, 10, 333)):
        D, I = knn_gemm(Q, [X[:1234], X[1234:]], 9, threads=threads, query_block=qb, ref_block=rb)
        np.testing.assert_array_equal(I, Ie)
        # float32 ||q||^2 + ||x||^2 - 2 q.x: self-distances come out ~1e-3, not 0 (as faiss)
        np.testing.assert_allclose(D, De, atol=5e-3)
    assert list(I[-1, :2]) == [17, 2000]
    # fewer rows than k: padded with -1 / inf
    D, I = knn_gemm(Q[:3], [X[:4]], 6)
    assert (I[:, 4:] == -1).all() and np.isinf(D[:, 4:]).all()
    np.testing.assert_array_equal(np.sort(I[:, :4], axis=1), np.tile(np.arange(4), (3, 1)))


def test_gemm_index_save_load(tmp_path):
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 8)).astype(np.float32)
    idx = GemmIndex(8, {"threads": 1})
    idx.train(X[:100])
    idx.add(X[:300])
    idx.add(X[300:])
    D, I = idx.search(X[:20], 5)
    assert (I[:, 0] == np.arange(20)).all()
    idx.save(tmp_path / "g.cqindex")
    D2, I2 = load_index(tmp_path / "g.cqindex").search(X[:20], 5)
    np.testing.assert_array_equal(I2, I)
    with pytest.raises(InputError, match="query_block"):
        GemmIndex(8, {"query_block": 0})


def test_recall_at_k_by_hand():
    rng = np.random.default_rng(5)
    X = rng.normal(size=(200, 4))
    Q = rng.normal(size=(6, 4))
    k = 5
    De, Ie = brute_force(X, Q, k + 5)
    approx = Ie[:, :k].copy()
    far = np.argsort(((Q[:, None] - X[None]) ** 2).sum(-1), axis=1)[:, -3:]  # the 3 farthest rows
    approx[0, 1:3] = far[0, :2]  # 3 of 5 right
    approx[3, 0] = far[3, 0]  # 4 of 5 right
    approx[4] = far[4, 0]  # 0 of 5 right (duplicates do not count twice)
    by_hand = np.mean([len(set(approx[r]) & set(Ie[r, :k])) / k for r in range(6)])
    assert by_hand == pytest.approx((3 + 5 + 5 + 4 + 0 + 5) / 30)
    assert recall_at_k(approx, Ie, De, k) == pytest.approx(by_hand)
    # a different id at exactly the k-th distance (a tie) is not a miss
    De2, Ie2 = De.copy(), Ie.copy()
    De2[1, k] = De2[1, k - 1]
    approx2 = Ie2[:, :k].copy()
    approx2[1, k - 1] = Ie2[1, k]
    assert recall_at_k(approx2, Ie2, De2, k) == pytest.approx(1.0)
    with pytest.raises(InputError, match="exact columns"):
        recall_at_k(approx, Ie[:, :3], De[:, :3], k)


def test_majority_vote_by_hand():
    labels = np.array([0, 1, 1, 2, 2, 2])
    I = np.array([[0, 1, 2, 3], [3, 4, 0, 1], [5, -1, -1, -1], [-1, -1, -1, -1], [0, 3, 1, 5]])
    # row 0: 0,1,1,2 -> 1; row 1: 2,2,0,1 -> 2; row 2: 2; row 3: none; row 4: 0,2,1,2 -> 2
    np.testing.assert_array_equal(majority_vote(I, labels, 3), [1, 2, 2, -1, 2])
    # tie 1 vs 2 -> smaller label
    np.testing.assert_array_equal(majority_vote(np.array([[1, 3]]), labels, 3), [1])


def test_run_benchmark_gemm_and_ivf_in_process():
    rows = run_benchmark("gemm", 5000, n_query=300, dim=16, k=10, threads=1, exact_queries=300)
    (r,) = rows
    assert r["recall_at_k"] == 1.0 and r["label_accuracy_vs_exact"] == 1.0
    assert r["bytes_per_cell"] == pytest.approx(4 * 16, rel=0.02)
    rows = run_benchmark(
        "ivfflat", 5000, n_query=300, dim=16, k=10, threads=1, params={"nlist": 32},
        search_sweep=[{"nprobe": 1}, {"nprobe": 32}],
    )
    assert [r["nprobe"] for r in rows] == [1, 32]
    assert rows[0]["recall_at_k"] < rows[1]["recall_at_k"] == pytest.approx(1.0)
    assert rows[0]["build_s"] == rows[1]["build_s"]  # one build, two searches
    with pytest.raises(InputError, match="search-time"):
        run_benchmark("ivfflat", 5000, n_query=10, dim=16, k=5, search_sweep=[{"factory": "Flat"}])
    with pytest.raises(InputError, match="unknown index preset"):
        run_benchmark("nope", 5000)


def test_cli_tiny_flat():
    cmd = [sys.executable, "-m", "cellquery.bench.knn", "--n-ref", "5000", "--n-query", "400",
           "--dim", "16", "--k", "20", "--index", "flat", "--threads", "1", "--seed", "1"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    assert len(lines) == 1
    row = json.loads(lines[0])
    assert list(row) == FIELDS
    assert row["on_gpu"] is False  # faiss's CPU index (params gpu: False by default in the bench)
    assert row["recall_at_k"] == 1.0 and row["label_accuracy_vs_exact"] == 1.0
    assert row["label_accuracy"] == row["label_accuracy_exact"]
    # better than always answering the reference's most abundant type
    world = syn.make_world(16, 1)
    _, QL = syn.make_queries(400, 16, 1, world=world)
    QL = QL[~np.isin(QL, world.unseen)]
    baseline = np.mean(QL == np.argmax(world.reference_p))
    assert baseline < row["label_accuracy"] <= 1.0
    assert row["n_ref"] == 5000 and row["exact_queries"] == 400
    assert 64 <= row["bytes_per_cell"] < 66  # float32 vectors + header
    assert row["peak_rss_mb"] > 0 and row["query_s"] > 0 and row["exact_gemm_bound_s"] > 0
    assert estimate_mem_mb("flat", 5000, 16, 400, 20) > row["peak_rss_mb"]


def test_cli_bad_input(capsys):
    from cellquery.bench.knn import main

    assert main(["--n-ref", "100", "--index", "nope"]) == 2
    assert "unknown index preset" in capsys.readouterr().err
    assert main(["--n-ref", "100", "--index", "flat", "--search-sweep", "{}"]) == 2
    assert "JSON list" in capsys.readouterr().err
    assert main(["--n-ref", "0", "--index", "flat"]) == 2
    assert "n_ref" in capsys.readouterr().err


def test_estimate_mem_mb_fits_atlas_size():
    assert estimate_mem_mb("ivfpq16", 40_000_000) < 24_000  # compressed: fits a 24 GB machine
    assert estimate_mem_mb("flat", 1_000_000) > estimate_mem_mb("ivfpq16", 1_000_000)
    assert estimate_mem_mb("flat", 40_000_000) > 10_000  # 5 GB of vectors, saved copy too


def test_pareto_front_by_hand():
    from cellquery.bench.figures import pareto_front

    recall = np.array([0.9, 0.8, 0.95, 0.85, 0.95])
    qps = np.array([100.0, 200.0, 50.0, 90.0, 40.0])
    # (0.85, 90) is beaten by (0.9, 100); (0.95, 40) by (0.95, 50)
    np.testing.assert_array_equal(pareto_front(recall, qps), [True, True, True, False, False])


def test_gather_and_figures(tmp_path):
    import pandas as pd

    from cellquery.bench.figures import gather_scale, plot_query_time_vs_size, plot_recall_vs_qps

    base = {f: 1 for f in FIELDS}
    paths = []
    for name, n, nprobe, q in (("ivf", 1000, 8, 0.1), ("ivf", 10000, 8, 0.5), ("flat", 1000, None, 0.2)):
        row = {**base, "index": name, "n_ref": n, "nprobe": nprobe, "query_s": q, "qps": 1 / q,
               "recall_at_k": 0.9, "k_factor": None, "disk_k_factor": None, "ef": None}
        p = tmp_path / f"{name}_{n}.tsv"
        pd.DataFrame([{"name": name, **row}]).to_csv(p, sep="\t", index=False)
        paths.append(p)
    df = gather_scale(paths)
    assert list(df["setting"]) == ["flat", "ivf nprobe=8", "ivf nprobe=8"]
    assert list(df["n_ref"]) == [1000, 1000, 10000]
    plot_query_time_vs_size(df, tmp_path / "t.png")
    plot_recall_vs_qps(df, tmp_path / "r.png")
    assert (tmp_path / "t.png").stat().st_size > 1000 and (tmp_path / "r.png").stat().st_size > 1000
    bad = tmp_path / "bad.tsv"
    pd.DataFrame([{"name": "x"}]).to_csv(bad, sep="\t", index=False)
    with pytest.raises(InputError):
        gather_scale([bad])


def test_check_scale_config():
    import yaml

    from cellquery.bench.scale import check_scale_config

    from pathlib import Path

    with open(Path(__file__).resolve().parents[1] / "config" / "scale.yaml") as f:
        check_scale_config(yaml.safe_load(f)["scale"])  # the shipped sweep is valid
    with pytest.raises(InputError, match=r"scale.indexes.x.preset"):
        check_scale_config({"indexes": {"x": {"preset": "nope"}}})
    with pytest.raises(InputError, match=r"scale.indexes.x.params"):
        check_scale_config({"indexes": {"x": {"preset": "flat", "params": {"bogus": 1}}}})
    with pytest.raises(InputError, match=r"scale.indexes.x.search_sweep"):
        check_scale_config({"indexes": {"x": {"preset": "ivfpq16", "search_sweep": [{"factory": "Flat"}]}}})


def test_peak_rss_of_a_child_is_its_own_not_its_callers():
    """A benchmark started from a large process (pytest, Snakemake) reports its own peak (VmHWM), not ru_maxrss's inherited one."""
    from cellquery.bench.memory import peak_rss_mb

    ballast = np.ones(400 * 2**20 // 8)  # 400 MB touched in this process
    parent = peak_rss_mb()
    code = "from cellquery.bench.memory import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert parent > 400 and 0 < child < parent - 300
    del ballast


def test_recall_figure_draws_the_disk_reranked_settings_as_their_own_dashed_line(tmp_path, monkeypatch):
    import pandas as pd

    import cellquery.bench.figures as figures

    saved = []
    monkeypatch.setattr(figures, "_save", lambda fig, path: saved.append(fig))
    rows = [("atlas", 16, None, 1400.0, 0.85), ("atlas", 32, None, 860.0, 0.86), ("atlas", 8, 2, 2400.0, 0.92),
            ("atlas", 16, 2, 1190.0, 0.96)]
    df = pd.DataFrame([dict(name=n, n_ref=10**6, k=50, nprobe=p, disk_k_factor=f, qps=q, recall_at_k=r)
                       for n, p, f, q, r in rows])
    figures.plot_recall_vs_qps(df, tmp_path / "r.png")
    lines = {line.get_label(): line for line in saved[0].axes[0].get_lines()}
    assert set(lines) == {"atlas", "atlas + re-rank from disk"}
    assert lines["atlas"].get_linestyle() == "-" and lines["atlas + re-rank from disk"].get_linestyle() == "--"
    assert list(lines["atlas + re-rank from disk"].get_xdata()) == [0.96, 0.92]  # ordered by queries/s
    assert lines["atlas"].get_color() == lines["atlas + re-rank from disk"].get_color()
