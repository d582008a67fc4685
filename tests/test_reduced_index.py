"""A reduced index in the workflow (indexes.<name>.reduce): the meta-cell transfer against a hand computation."""

import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.index import build_index
from cellquery.index.calibration import sample_rows
from cellquery.index.reduce import (
    bytes_per_cell, check_reduce, load_meta_cells, reduce_reference, reduced_self_distances, reduced_skip_reason,
    save_meta_cells,
)
from cellquery.settings import GroupSettings, TransferSettings
from cellquery.transfer import sweep_column
from cellquery.transfer.meta import meta_predict_table


def world(seed=0):
    rng = np.random.default_rng(seed)
    centres = np.array([[0, 0, 0], [6, 0, 0], [0, 6, 0]], dtype=float)
    codes = rng.integers(0, 3, 300)
    X = (centres[codes] + rng.normal(0, 1.2, (300, 3))).astype(np.float32)  # overlapping types: mixed meta cells
    labels = np.array(["B", "T", "NK"])[codes]
    fates = rng.dirichlet([1, 1], 300)
    Q = (centres[rng.integers(0, 3, 40)] + rng.normal(0, 1.5, (40, 3))).astype(np.float32)
    Q[:3] += 40  # far away: rejected
    return X, labels, fates, Q


@pytest.mark.parametrize("method", ["kmeans", "sketch"])
def test_meta_transfer_equals_hand_vote(tmp_path, method):
    X, labels, fates, Q = world()
    meta = reduce_reference(X, labels, method=method, n=25, seed=3, fates=fates)
    save_meta_cells(tmp_path / "m.npz", meta, ["f0", "f1"])
    meta, keys = load_meta_cells(tmp_path / "m.npz")
    assert keys == ("f0", "f1")
    k = 5
    index = build_index("faiss", meta.vectors, {"factory": "Flat"})
    distances, indices = index.search(Q, k)
    ref_d, _ = index.search(X, k + 1)
    self_d = reduced_self_distances(ref_d, k)
    reference_obs = pd.DataFrame({"cell_type": labels, "f0": fates[:, 0], "f1": fates[:, 1]})
    query_obs = pd.DataFrame({"cell_type": ["B"] * len(Q), "f0": 0.0, "f1": 0.0}, index=[f"q{i}" for i in range(len(Q))])
    group = GroupSettings(label_key="cell_type", continuous_keys=("f0", "f1"))
    settings = TransferSettings.from_config({"voter": "majority", "min_hits": 2, "min_fraction": 0.5, "distance_quantile": 0.9})
    table, mapping = meta_predict_table(
        meta=meta, fate_keys=keys, reference_obs=reference_obs, query_obs=query_obs, distances=distances, indices=indices,
        self_distances=self_d, group=group, settings=settings, sweep=[0.2],
    )

    # by hand: nearest meta cells by numpy, members' label shares summed over hits within the cut-off
    V = meta.vectors.astype(np.float64)
    D = np.sqrt(((Q[:, None, :].astype(np.float64) - V[None]) ** 2).sum(-1))
    near = np.argsort(D, axis=1)[:, :k]
    Dr = np.sqrt(((X[:, None, :].astype(np.float64) - V[None]) ** 2).sum(-1))
    members = [np.flatnonzero(meta.assignment == j) for j in range(meta.n)]
    np.testing.assert_array_equal(meta.assignment, Dr.argmin(axis=1))  # every cell in its nearest meta cell
    rows = sample_rows(len(X), seed=0)  # the reference cells whose distances set the cut-off
    cutoff = np.quantile(np.sort(Dr, axis=1)[rows, :k], 0.9)
    for t_col, cut in (("prediction", cutoff), (sweep_column(0.2), np.quantile(np.sort(Dr, axis=1)[rows, :k], 0.8))):
        expected = []
        for q in range(len(Q)):
            votes = {}
            counted = [j for j in near[q] if D[q, j] <= cut]
            for j in counted:
                for lab in labels[members[j]]:
                    votes[lab] = votes.get(lab, 0) + 1 / len(members[j])
            if len(counted) < 2:
                expected.append("rejected")
                continue
            top = max(votes, key=votes.get)
            expected.append(top if votes[top] / sum(votes.values()) > 0.5 else "ambiguous")
            if t_col == "prediction":
                assert table["n_hits"][q] == len(counted)
                assert table["pred_f0"][q] == pytest.approx(np.mean([fates[members[j], 0].mean() for j in counted]), rel=1e-5)
                # M: each counted hit's weight split evenly among its members
                row = np.zeros(len(X))
                for j in counted:
                    row[members[j]] += 1 / len(counted) / len(members[j])
                np.testing.assert_allclose(mapping[q].toarray().ravel(), row, atol=1e-12)
        assert table[t_col].tolist() == expected
    assert (table["prediction"][:3] == "rejected").all() and np.isnan(table["pred_f0"][:3]).all()
    assert {"B", "T", "NK"} <= set(table["prediction"])


def test_bytes_per_cell_counts_vectors_and_distributions():
    X, labels, fates, _ = world()
    meta = reduce_reference(X, labels, method="kmeans", n=10, seed=0)
    nonzero = sum(len(set(labels[meta.assignment == j])) for j in range(meta.n))
    assert bytes_per_cell(meta) == pytest.approx((10 * 3 * 4 + nonzero * 8) / 300)


def test_reduced_config_checks_and_skips():
    config = {
        "indexes": {"flat": {"backend": "faiss"}, "km": {"backend": "faiss", "reduce": {"method": "kmeans", "n": 5}}},
        "transfers": {"maj": {"voter": "majority"}, "kern": {"voter": "kernel"}, "cal": {"voter": "majority", "significance": {}}},
    }
    assert reduced_skip_reason(config, "km", "maj") is None
    assert reduced_skip_reason(config, "flat", "kern") is None and reduced_skip_reason(config, "native", "native") is None
    assert "majority" in reduced_skip_reason(config, "km", "kern")
    assert "P-values" in reduced_skip_reason(config, "km", "cal")
    with pytest.raises(InputError, match="one shard"):
        check_reduce("km", {"backend": "faiss", "reduce": {"method": "kmeans", "n": 5}, "shards": 2})
    with pytest.raises(InputError, match="method"):
        check_reduce("km", {"backend": "faiss", "reduce": {"method": "leiden", "n": 5}})


def test_index_bytes_per_cell_counts_files_and_distributions(tmp_path):
    from cellquery.index.reduce import index_bytes_per_cell

    X, labels, fates, _ = world()
    meta = reduce_reference(X, labels, method="kmeans", n=10, seed=0, fates=fates)
    files = []
    for name, vectors in (("flat", X), ("meta", meta.vectors)):
        path = tmp_path / f"{name}.bin"
        build_index("faiss", vectors, {"factory": "Flat"}).save(path)
        files.append(path)
    flat = index_bytes_per_cell([files[0]], len(X))
    assert flat == pytest.approx(files[0].stat().st_size / 300) and flat >= 3 * 4  # at least the float32 vectors
    nonzero = int(np.count_nonzero(meta.label_counts))
    reduced = index_bytes_per_cell([files[1]], len(X), meta)
    assert reduced == pytest.approx((files[1].stat().st_size + nonzero * 8 + 10 * 2 * 4) / 300)
    assert reduced < flat


def check_reduced_runs(workdir, config):
    """Every reduced index's computed runs in a finished run: predictions and bytes_per_cell recomputed by hand.

    The hits must be the nearest meta cells (numpy), the predictions the vote
    of their label distributions within the cut-off set by the reference
    cells' own distances to the meta cells, and the summary's bytes_per_cell
    the index file's size plus 8 bytes per (label, weight) pair and the fates.
    """
    from cellquery.index.reduce import reduce_spec
    from cellquery.io import read_embedding

    summary = pd.read_csv(workdir / "results/summary.tsv", sep="\t")
    checked = 0
    for index, spec in config["indexes"].items():
        if reduce_spec(spec) is None:
            continue
        runs = summary[(summary["index"] == index) & (summary.metric == "mba")]
        assert len(runs), index
        for run in runs.itertuples():
            base = workdir / f"results/{run.group}/embeddings/{run.method}/seed{run.seed}"
            model = base / "model0"
            meta, keys = load_meta_cells(model / index / "meta_cells.npz")
            assert meta.n <= reduce_spec(spec)["n"]
            query = read_embedding(model / "query_embedding.h5ad").astype(np.float64)
            reference = read_embedding(model / "reference_embedding.h5ad").astype(np.float64)
            V = meta.vectors.astype(np.float64)
            hits = np.load(model / index / "hits.npz")
            k = hits["indices"].shape[1]
            D = np.sqrt(((query[:, None, :] - V[None]) ** 2).sum(-1))
            np.testing.assert_array_equal(np.sort(hits["indices"], axis=1), np.sort(np.argsort(D, axis=1)[:, :k], axis=1))
            np.testing.assert_allclose(hits["distances"], np.take_along_axis(D, hits["indices"], axis=1), rtol=1e-4, atol=1e-4)
            Dr = np.sqrt(((reference[:, None, :] - V[None]) ** 2).sum(-1))
            np.testing.assert_array_equal(meta.assignment, Dr.argmin(axis=1))
            self_d = np.load(model / index / "self_distances.npy")
            np.testing.assert_allclose(self_d, np.sort(Dr, axis=1)[sample_rows(len(reference), seed=int(run.seed)), :k],
                                       rtol=1e-4, atol=1e-4)
            settings = TransferSettings.from_config(config["transfers"][run.transfer])
            cutoff = np.quantile(self_d, settings.distance_quantile)
            share = meta.label_counts / meta.label_counts.sum(axis=1, keepdims=True)
            predictions = pd.read_csv(base / index / run.transfer / "predictions.tsv", sep="\t")
            for q in range(len(query)):
                # the hits' own distances (float32 from the index; checked against D above) decide the cut-off
                counted = [j for j, d in zip(hits["indices"][q], hits["distances"][q]) if d <= cutoff]
                votes = share[counted].sum(axis=0)
                if len(counted) < settings.min_hits:
                    expected = "rejected"
                elif votes.max() / votes.sum() > settings.min_fraction:
                    expected = meta.labels[votes.argmax()]
                else:
                    expected = "ambiguous"
                assert predictions["prediction"][q] == expected, (run, q)
            files = sorted((model / index).glob("shard*/index.bin"))
            extra = np.count_nonzero(meta.label_counts) * 8 + (meta.fates.size * 4 if meta.fates is not None else 0)
            size = summary[(summary.group == run.group) & (summary["index"] == index) & (summary.transfer == run.transfer)
                           & (summary.seed == run.seed) & (summary.metric == "bytes_per_cell")].value
            assert size.tolist() == pytest.approx([(sum(f.stat().st_size for f in files) + extra) / len(reference)])
            checked += 1
    return checked


def test_toy_run_reduced_index(toy_run):
    """The toy run's reduced index (kmeans_50 on pca) against hand computations from its own files."""
    assert check_reduced_runs(toy_run.workdir, toy_run.config) >= 1
