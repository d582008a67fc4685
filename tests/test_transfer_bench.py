"""The one-shot transfer benchmark (python -m cellquery.bench.transfer) on a tiny size."""

import importlib.util
import json

import numpy as np
import pytest

from cellquery.bench import transfer as bench
from cellquery.bench.synthetic import make_queries, make_world, reference_sample
from cellquery.errors import InputError

HAS_CELLMAPPER = importlib.util.find_spec("cellmapper") is not None


def test_gemm_bound_times_the_search_shape():
    rng = np.random.default_rng(0)
    Q = rng.normal(size=(300, 8)).astype(np.float32)
    X = rng.normal(size=(2000, 8)).astype(np.float32)
    seconds, shape = bench.gemm_bound(Q, X, threads=1, shapes=((64, 512), (300, 2000)))
    assert 0 < seconds < 5 and shape in ((64, 512), (300, 2000))


def test_seen_accuracy_by_hand():
    true = np.array([1, 2, 3, 4])
    assert bench.seen_accuracy(true, ["1", "9", "3", "4"], np.array([True, True, True, False])) == pytest.approx(2 / 3)


def test_cli_prints_json_lines_without_peer(capsys, tmp_path):
    figure = tmp_path / "sizes.png"
    assert bench.main(["--sizes", "1500", "3000", "--n-query", "200", "--k", "10", "--against", "none", "--threads", "1",
                       "--figure", str(figure)]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["run"] for r in rows] == ["cellquery", "cellquery_exact", "gemm_bound"] * 2
    assert [r["n_ref"] for r in rows] == [1500] * 3 + [3000] * 3
    world = make_world(32, 0)
    X, L = reference_sample(3000, 32, 0, world=world)
    Q, QL = make_queries(200, 32, 0, world=world)
    seen = ~np.isin(QL, world.unseen)
    mine, exact, bound = rows[3:]
    assert mine["build_s"] + mine["voter_choice_s"] + mine["search_s"] + mine["vote_s"] <= mine["wall_s"] + 1e-3
    assert exact["build_s"] + exact["search_s"] + exact["vote_s"] <= exact["wall_s"] + 1e-3
    for r in (mine, exact):
        assert r["peak_rss_delta_mb"] >= 0 and "RSS" in r["rss_method"]
    # the voter: the largest MBA on 2,000 reference rows with their own hit dropped (recomputed here
    # with brute-force hits, which the index's agree with at this size); the query's labels play no part
    from cellquery.transfer import transfer_labels
    from cellquery.index.graph import drop_self_hits
    from cellquery.transfer.tuning import choose_voter
    from test_index import brute_force

    scores = mine["voter_mba_in_reference"]
    assert mine["voter_rows"] == 2000 and set(scores) == set(bench.VOTERS_COMPARED)
    assert scores[mine["voter"]] == max(scores.values()) and exact["voter"] == mine["voter"]
    rows_ = np.sort(np.random.default_rng(0).choice(3000, size=2000, replace=False))
    Dh, Ih = drop_self_hits(*brute_force(X, X[rows_], 11), rows_)
    voter, by_hand = choose_voter(L, rows_, Dh.astype(np.float32), Ih, bench.VOTERS_COMPARED)
    assert voter == mine["voter"] and all(scores[v] == pytest.approx(by_hand[v], abs=0.01) for v in scores)
    # the exact run's accuracy is that voter's vote over brute-force neighbours
    D, I = brute_force(X, Q, 10)
    predicted = transfer_labels(L.astype(str), D.astype(np.float32), I, voter=voter, min_fraction=0.0)["prediction"]
    assert exact["accuracy_seen"] == pytest.approx(round(bench.seen_accuracy(QL, predicted, seen), 4), abs=0.006)
    assert mine["accuracy_seen_by_voter"][voter] == mine["accuracy_seen"]
    assert bound["exact_search_s"] == exact["search_s"]
    assert bound["exact_search_over_bound"] == pytest.approx(exact["search_s"] / bound["bound_s"], rel=0.02, abs=2e-3)
    assert figure.stat().st_size > 1000


def test_faiss_rows_vote_the_exact_neighbours():
    """``--faiss cpu``: faiss's exact Flat gives the gemm path's hits, so the same predictions' accuracy."""
    rows = bench.run(3000, n_query=300, k=10, threads=1, against=None, voter="majority", faiss_device="cpu")
    by_run = {r["run"]: r for r in rows}
    assert list(by_run) == ["cellquery", "cellquery_exact", "gemm_bound", "cellquery_faiss_cpu",
                            "cellquery_faiss_cpu_exact"]
    ivf, flat, exact = by_run["cellquery_faiss_cpu"], by_run["cellquery_faiss_cpu_exact"], by_run["cellquery_exact"]
    assert json.loads(flat["params"])["factory"] == "Flat" and flat["gpu"] is False
    assert flat["accuracy_seen"] == exact["accuracy_seen"]
    assert json.loads(ivf["params"])["nlist"] == bench.one_shot_nlist(3000)
    assert json.loads(ivf["params"])["nprobe"] == bench.NPROBE
    assert abs(ivf["accuracy_seen"] - exact["accuracy_seen"]) < 0.05 and ivf["voter"] == "majority"
    for r in (ivf, flat):
        assert r["build_s"] + r["search_s"] + r["vote_s"] <= r["wall_s"] + 1e-3


def test_faiss_gpu_rows_say_why_without_a_gpu(monkeypatch):
    from cellquery import device

    monkeypatch.setattr(device, "faiss_gpus", lambda: 0)
    rows = bench.run(1500, n_query=50, k=5, threads=1, exact=False, against=None, voter="majority", faiss_device="gpu")
    assert [r["run"] for r in rows] == ["cellquery", "cellquery_faiss_gpu", "cellquery_faiss_gpu_exact"]
    assert all(r["gpu"] is False and "get_num_gpus() == 0" in r["reason"] for r in rows[1:])
    with pytest.raises(InputError, match="--faiss must be cpu or gpu"):
        bench.run(1500, n_query=10, k=5, against=None, faiss_device="tpu")


@pytest.mark.skipif(not HAS_CELLMAPPER, reason="cellmapper is not installed (pip install cellmapper==0.2.5)")
def test_against_cellmapper_tiny():
    rows = bench.run(2000, n_query=150, k=10, threads=1, exact=False, voter="kernel")  # CellMapper's kind of vote
    assert [r["run"] for r in rows] == ["cellquery", "cellmapper", "ratio"]
    mine, theirs, ratio = rows
    json.dumps(rows)  # every row is JSON
    assert ratio["speedup"] == pytest.approx(theirs["wall_s"] / mine["wall_s"], rel=0.01, abs=0.006)
    # 2,000 reference cells of 195 seen types: both label about a quarter of the seen-type
    # cells right (seen 0.27 and 0.26), far above the most common type's share
    assert 0.15 < theirs["accuracy_seen"] <= 1 and 0.15 < mine["accuracy_seen"] <= 1
    assert abs(theirs["accuracy_seen"] - mine["accuracy_seen"]) < 0.1
    assert ratio["accuracy_difference"] == pytest.approx(mine["accuracy_seen"] - theirs["accuracy_seen"], abs=1e-4)
    assert mine["voter"] == "kernel" and "voter_choice_s" not in mine
    with pytest.raises(InputError, match="voter must be auto"):
        bench.run(2000, n_query=10, k=5, against=None, voter="gauss")


def test_calibration_row_scales_and_rule(capsys):
    """Every list scanned in the calibration's rows search: exact local scales; the rule's MBA from its predictions."""
    assert bench.main(["--n-ref", "3000", "--n-query", "300", "--k", "10", "--against", "none", "--no-exact", "--threads", "1",
                       "--nlist", "20", "--calibration", "--calibration-search", "rows", "--calibration-nprobe", "20",
                       "--scale-sample", "500"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["run"] for r in rows] == ["cellquery", "calibration"]
    cal = rows[1]
    assert cal["reference_nprobe"] == 20 and cal["scale_sample"] == 500 and cal["calibration_search"] == "rows"
    assert cal["scale_exact_fraction"] > 0.99 and abs(cal["scale_relerr_max"]) < 1e-3
    for unit in ("s", "cpu_s"):  # the one search feeds both; the calibration counts it
        assert cal[f"calibration_{unit}"] == pytest.approx(cal[f"reference_search_{unit}"] + cal[f"calibrate_{unit}"], abs=1e-3)
        assert cal[f"conformal_{unit}"] == pytest.approx(cal[f"conformal_calibrate_{unit}"], abs=1e-3)
    assert 0 <= cal["calibrated_mba_seen"] <= 1 and 0 <= cal["calibrated_mba_unseen"] <= 1
    assert cal["rejection_cells_per_s"] == round(300 / cal["rejection_query_s"])
    assert len(cal["rejection_query_runs_s"]) == 7 and cal["rejection_query_s"] == sorted(cal["rejection_query_runs_s"])[3]
    assert cal["rejection_query_first_s"] > 0
    # fewer lists: approximate scales, never below the exact ones
    approx = bench.run(3000, n_query=300, k=10, threads=1, exact=False, against=None, calibration=True,
                       index_params={"nlist": 20}, calibration_nprobe=1, scale_sample=500, calibration_search="rows")[1]
    assert approx["scale_relerr_mean"] >= 0 and approx["scale_exact_fraction"] < 1


def test_calibration_by_leaves(capsys):
    """The default leaf search: every leaf probed gives exact scales; few leaves, approximate scales never below them."""
    assert bench.main(["--n-ref", "3000", "--n-query", "300", "--k", "10", "--against", "none", "--no-exact", "--threads", "2",
                       "--nlist", "20", "--calibration", "--leaf-size", "100", "--leaf-nprobe", "200", "--leaf-candidates",
                       "200", "--scale-sample", "500"]) == 0
    cal = [json.loads(line) for line in capsys.readouterr().out.splitlines()][1]
    assert cal["calibration_search"] == "leaves" and json.loads(cal["leaves"]) == {"candidates": 200, "leaf_size": 100, "nprobe": 200}
    assert cal["scale_exact_fraction"] > 0.99 and abs(cal["scale_relerr_max"]) < 1e-3
    for unit in ("s", "cpu_s"):  # two searches: scales only, then hits for the conformal candidates
        assert cal[f"calibration_{unit}"] == pytest.approx(cal[f"calibrate_{unit}"], abs=1e-3)
        assert cal[f"conformal_{unit}"] == pytest.approx(cal[f"reference_search_{unit}"] + cal[f"conformal_calibrate_{unit}"], abs=1e-3)
    approx = bench.run(3000, n_query=300, k=10, threads=1, exact=False, against=None, calibration=True,
                       index_params={"nlist": 20}, scale_sample=500, leaves={"leaf_size": 50, "nprobe": 2})[1]
    assert approx["scale_relerr_mean"] > 0 and approx["scale_exact_fraction"] < 1
    with pytest.raises(InputError, match="--leaf-nprobe"):
        bench.run_calibration(None, None, [], None, [], 10, 0, nprobe=3)
    with pytest.raises(InputError, match="calibration search must be leaves or rows, got 'graph'"):
        bench.run_calibration(None, None, [], None, [], 10, 0, search="graph")


def test_calibration_both_searches_give_their_ratio():
    rows = bench.run(3000, n_query=300, k=10, threads=1, exact=False, against=None, calibration=True,
                     index_params={"nlist": 20}, scale_sample=300, calibration_search="both", leaves={"leaf_size": 100})
    assert [r["run"] for r in rows] == ["cellquery", "calibration_rows", "calibration", "calibration_ratio"]
    by_run = {r["run"]: r for r in rows}
    assert by_run["calibration_rows"]["calibration_search"] == "rows" and by_run["calibration"]["calibration_search"] == "leaves"
    rows_, leaves_, ratio = by_run["calibration_rows"], by_run["calibration"], by_run["calibration_ratio"]
    assert ratio["calibration_speedup"] == pytest.approx(rows_["calibration_s"] / leaves_["calibration_s"], rel=0.02, abs=0.01)
    assert ratio["total_speedup"] == pytest.approx((rows_["calibration_s"] + rows_["conformal_s"])
                                                   / (leaves_["calibration_s"] + leaves_["conformal_s"]), rel=0.02, abs=0.01)
