"""Novel types among rejected cells (Cell BLAST Fig. 3a-c, Supp. Fig. 14g): enrichment ratios by hand, Leiden clusters,
and the per-run glue (hits of embedding methods and of predictors) against brute force."""

import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.index.calibration import Calibration
from cellquery.metrics import novelty
from cellquery.metrics.novelty import (
    ALL, LEIDEN, NO_EMBEDDING, NO_REJECTED, NOVEL_TYPE_COLUMNS, REJECTED_CELL_COLUMNS, TOO_FEW,
    enrichment_ratio, layout_2d, leiden_clusters, novel_types, type_enrichment,
)
from cellquery.novelty import TABLES, analyse_run, gather, run_hits
from cellquery.settings import GroupSettings

RUN = dict(group="g", method="m", index="flat", transfer="majority", seed=0, reported_as="m")
PNG = b"\x89PNG\r\n\x1a\n"


def predictions(true, pred):
    return pd.DataFrame({"cell": [f"q{i}" for i in range(len(true))], "true_label": true, "prediction": pred})


# query of 20 cells: positive types A (10), B (6) in the reference, negative types N1 (3), N2 (1)
TRUE = ["A"] * 10 + ["B"] * 6 + ["N1"] * 3 + ["N2"]
# rejected: the three N1 cells and one B cell; the N2 cell is called A
PRED = ["A"] * 10 + ["rejected"] + ["B"] * 5 + ["rejected"] * 3 + ["A"]
REFERENCE = ["A"] * 5 + ["B"] * 5


def test_enrichment_ratio_by_hand():
    assert enrichment_ratio(3, 4, 5, 20) == pytest.approx((3 / 4) / (5 / 20)) == pytest.approx(3.0)
    assert np.isnan(enrichment_ratio(1, 0, 5, 20)) and np.isnan(enrichment_ratio(0, 4, 0, 20))


def test_type_enrichment_of_rejected_cells():
    rejected = np.array(PRED) == "rejected"
    table = type_enrichment(np.array(TRUE)[rejected], TRUE, ["N1", "N2"], all_negative=True).set_index("cell_type")
    # 4 rejected cells: 3 N1 (3 of 20 in the query), 1 B (6 of 20), no N2 (1 of 20)
    assert table.loc["N1", "enrichment"] == pytest.approx((3 / 4) / (3 / 20)) == pytest.approx(5.0)
    assert table.loc["B", "enrichment"] == pytest.approx((1 / 4) / (6 / 20))
    assert table.loc["N2", "enrichment"] == 0.0 and table.loc["N2", "n_cells"] == 0
    assert list(table.index) == ["B", "N1", "N2"]  # A was never rejected
    assert table["negative"].to_dict() == {"B": False, "N1": True, "N2": True}
    assert table["top_negative"].to_dict() == {"B": False, "N1": True, "N2": False}
    assert table.loc["N1", "query_cells"] == 3
    # without all_negative, only the types present
    assert list(type_enrichment(np.array(TRUE)[rejected], TRUE, ["N1", "N2"])["cell_type"]) == ["B", "N1"]
    with pytest.raises(InputError, match="not among the query"):
        type_enrichment(["Z"], TRUE, [])


def test_two_cluster_toy_by_hand(monkeypatch):
    """Two clusters fixed by hand: c0 = the three N1 cells, c1 = the B cell; enrichment per cluster by hand."""
    rejected = np.flatnonzero(np.array(PRED) == "rejected")  # cells 10 (B), 16, 17, 18 (N1)
    clusters = {10: "1", 16: "0", 17: "0", 18: "0"}
    monkeypatch.setattr(novelty, "leiden_clusters", lambda points, seed=0: np.array([clusters[i] for i in rejected]))
    embedding = np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32)
    types, cells = novel_types(predictions(TRUE, PRED), REFERENCE, embedding, run=RUN, seed=3)
    assert list(types.columns) == NOVEL_TYPE_COLUMNS and list(cells.columns) == REJECTED_CELL_COLUMNS
    assert (types["clustering"] == LEIDEN).all() and (types["query_total"] == 20).all()
    rows = types.set_index(["cluster", "cell_type"])
    # all rejected cells: 4, as in test_type_enrichment_of_rejected_cells
    assert rows.loc[(ALL, "N1"), "enrichment"] == pytest.approx(5.0) and rows.loc[(ALL, "N1"), "cluster_cells"] == 4
    # cluster 0: 3 cells, all N1: (3/3) / (3/20)
    assert rows.loc[("0", "N1"), "enrichment"] == pytest.approx(20 / 3) and rows.loc[("0", "N1"), "cluster_cells"] == 3
    assert rows.loc[("0", "N1"), "top_negative"]
    # cluster 1: the B cell alone: (1/1) / (6/20); no negative type, so none is marked
    assert rows.loc[("1", "B"), "enrichment"] == pytest.approx(20 / 6) and not rows.loc[("1", "B"), "top_negative"]
    assert set(rows.loc["1"].index) == {"B"} and set(rows.loc["0"].index) == {"N1"}
    assert sorted(cells["cell"]) == ["q10", "q16", "q17", "q18"]
    assert cells.set_index("cell")["cluster"].to_dict() == {"q10": "1", "q16": "0", "q17": "0", "q18": "0"}
    assert cells.set_index("cell")["negative"].to_dict() == {"q10": False, "q16": True, "q17": True, "q18": True}
    # the 2-D layout is the PCA of the rejected cells' embedding (up to the sign of each component)
    from sklearn.decomposition import PCA

    expected = PCA(n_components=2, svd_solver="full").fit_transform(embedding[rejected].astype(np.float64))
    np.testing.assert_allclose(np.abs(cells[["pc1", "pc2"]].to_numpy()), np.abs(expected), atol=1e-5)
    assert (types[list(RUN)] == pd.Series(RUN)).all().all()


def test_runs_without_embedding_or_rejections_say_so():
    types, cells = novel_types(predictions(TRUE, PRED), REFERENCE, np.zeros((20, 0), np.float32), run=RUN)
    assert (types["clustering"] == NO_EMBEDDING).all() and (types["cluster"] == ALL).all()
    assert cells[["pc1", "pc2"]].isna().all().all() and len(cells) == 4
    types, cells = novel_types(predictions(TRUE, PRED), REFERENCE, None, run=RUN)
    assert (types["clustering"] == NO_EMBEDDING).all()
    # nothing rejected: the negative types are listed with no cells and no ratio
    types, cells = novel_types(predictions(TRUE, ["A"] * 20), REFERENCE, np.ones((20, 3)), run=RUN)
    assert (types["clustering"] == NO_REJECTED).all() and list(types["cell_type"]) == ["N1", "N2"]
    assert (types["n_cells"] == 0).all() and types["enrichment"].isna().all() and cells.empty
    # two rejected cells are placed but not clustered
    types, cells = novel_types(predictions(TRUE, ["rejected"] * 2 + ["A"] * 18), REFERENCE, np.eye(20), run=RUN)
    assert (types["clustering"] == TOO_FEW).all() and cells["pc1"].notna().all() and (cells["cluster"] == "").all()
    with pytest.raises(InputError, match="embedding has 5 cells"):
        novel_types(predictions(TRUE, PRED), REFERENCE, np.ones((5, 2)), run=RUN)


def test_leiden_keeps_far_blobs_apart():
    """Two tight blobs 100 apart (more cells each than neighbours): no cluster spans both."""
    rng = np.random.default_rng(1)
    points = np.concatenate([rng.normal(0, 0.1, (30, 5)), rng.normal(100, 0.1, (25, 5))])
    clusters = leiden_clusters(points, seed=0)
    assert len(clusters) == 55
    assert not set(clusters[:30]) & set(clusters[30:])
    np.testing.assert_array_equal(leiden_clusters(points, seed=0), clusters)  # seeded: the same clusters again
    assert list(leiden_clusters(points[:1])) == ["0"]


def test_layout_2d_degenerate_inputs():
    line = np.outer(np.arange(5.0), [1.0, 2.0, 0.0])
    xy = layout_2d(line)
    np.testing.assert_allclose(np.abs(xy[:, 0]), np.abs(np.arange(5.0) - 2.0) * np.sqrt(5.0), atol=1e-9)
    np.testing.assert_allclose(xy[:, 1], 0.0, atol=1e-9)
    np.testing.assert_allclose(layout_2d(np.arange(4.0)[:, None])[:, 1], 0.0)  # one dimension: pc2 is 0
    assert layout_2d(np.ones((1, 3))).tolist() == [[0.0, 0.0]]


def brute_force(reference, query, k):
    d = np.linalg.norm(query[:, None, :].astype(np.float64) - reference[None, :, :], axis=2)
    order = np.argsort(d, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(d, order, axis=1), order


def test_run_hits_of_a_predictor_are_exact_with_local_scales():
    rng = np.random.default_rng(2)
    reference, query = rng.normal(size=(40, 3)).astype(np.float32), rng.normal(size=(12, 3)).astype(np.float32)
    hits = run_hits(reference, query, k=4)
    distances, indices = brute_force(reference, query, 4)
    np.testing.assert_array_equal(hits.indices, indices)
    np.testing.assert_allclose(hits.distances, distances, rtol=1e-5)
    # local scale: distance of the hit to its 4th nearest *other* reference cell
    self_d = np.linalg.norm(reference[:, None, :].astype(np.float64) - reference[None, :, :], axis=2)
    scale = np.sort(self_d, axis=1)[:, 4]
    np.testing.assert_allclose(hits.scales, scale[indices], rtol=1e-5)
    assert run_hits(np.zeros((40, 0), np.float32), np.zeros((12, 0), np.float32), k=4) is None


def test_run_hits_of_an_index_use_its_calibration():
    rng = np.random.default_rng(3)
    reference, query = rng.normal(size=(10, 2)).astype(np.float32), rng.normal(size=(3, 2)).astype(np.float32)
    indices = np.array([[4, 2], [0, -1], [9, 9]])
    calibration = Calibration(scale=np.arange(1, 11, dtype=np.float32), null=np.array([0.5]))
    hits = run_hits(reference, query, k=2, indices=indices, calibration=calibration)
    np.testing.assert_allclose(hits.scales, [[5, 3], [1, np.nan], [10, 10]])
    assert hits.distances[0, 0] == pytest.approx(np.linalg.norm(query[0] - reference[4]), rel=1e-6)
    assert np.isinf(hits.distances[1, 1])
    with pytest.raises(InputError, match="calibration"):
        run_hits(reference, query, k=2, indices=indices)


def test_analyse_run_tables_and_gather(tmp_path):
    """A simulated-like run: 2 reference studies; every table has its columns, and gather concatenates them."""
    rng = np.random.default_rng(4)
    reference = np.concatenate([rng.normal(0, 1, (10, 2)), rng.normal(10, 1, (10, 2))]).astype(np.float32)
    reference_obs = pd.DataFrame({"cell_type": REFERENCE * 2, "study": ["s1", "s2"] * 10, "dataset": "ref"})
    query = rng.normal(0, 1, (20, 2)).astype(np.float32)
    hits = run_hits(reference, query, k=3)
    group = GroupSettings(label_key="cell_type", batch_keys=("study",))
    tables = analyse_run(predictions(TRUE, PRED), reference_obs=reference_obs, query_embedding=query, hits=hits,
                         group=group, run={**RUN, "kind": "embeddings"})
    assert set(tables) == set(TABLES)
    for name, table in tables.items():
        assert list(table.columns) == TABLES[name], name
    assert set(tables["hit_datasets"]["unit"]) == {"s1", "s2"} and (tables["hit_datasets"]["unit_key"] == "study").all()
    assert set(tables["distance_roc"]["metric"]) == {"distance_auc_euclidean", "distance_auc_normalised"}
    # no embedding: only the novel-type rows
    empty = analyse_run(predictions(TRUE, PRED), reference_obs=reference_obs, query_embedding=np.zeros((20, 0)),
                        hits=None, group=group, run=RUN)
    assert empty["distance_roc"].empty and empty["hit_datasets"].empty and len(empty["novel_types"])
    paths = []
    for i, result in enumerate((tables, empty)):
        paths.append(tmp_path / f"run{i}.tsv")
        result["novel_types"].assign(seed=1 - i).to_csv(paths[-1], sep="\t", index=False)
    gathered = gather(paths, "novel_types")
    assert len(gathered) == len(tables["novel_types"]) + len(empty["novel_types"])
    assert gathered["seed"].tolist() == sorted(gathered["seed"].tolist())
    assert list(gather([], "hit_datasets").columns) == TABLES["hit_datasets"]
    # Leiden ids come back as written (a file of numeric ids reads as floats), "" where not clustered
    cells = tables["rejected_cells"].assign(cluster=["0", "1", "1", "0"])
    cells.to_csv(tmp_path / "cells.tsv", sep="\t", index=False)
    empty["rejected_cells"].to_csv(tmp_path / "unclustered.tsv", sep="\t", index=False)
    ids = gather([tmp_path / "cells.tsv", tmp_path / "unclustered.tsv"], "rejected_cells")["cluster"].tolist()
    assert sorted(ids) == ["", "", "", "", "0", "0", "1", "1"]


def test_plot_novel_types(tmp_path, monkeypatch):
    from cellquery.plots.novel_types import plot_novel_types

    monkeypatch.setattr(novelty, "leiden_clusters", lambda points, seed=0: np.array(["0", "0", "1", "1"]))
    parts = [novel_types(predictions(TRUE, PRED), REFERENCE, np.eye(20), run=RUN),
             novel_types(predictions(TRUE, PRED), REFERENCE, None, run={**RUN, "method": "true_labels", "reported_as": "true_labels"}),
             novel_types(predictions(TRUE, ["A"] * 20), REFERENCE, np.eye(20), run={**RUN, "method": "x", "reported_as": "x"})]
    types = pd.concat([p[0] for p in parts], ignore_index=True)
    cells = pd.concat([p[1] for p in parts], ignore_index=True)
    path = tmp_path / "novel_types.png"
    plot_novel_types(types, cells, path, controls=["true_labels"])
    assert path.read_bytes()[:8] == PNG
    plot_novel_types(types.iloc[:0], cells.iloc[:0], tmp_path / "empty.png")
    assert (tmp_path / "empty.png").read_bytes()[:8] == PNG
