"""Meta cells at scale (cellquery.bench.meta_cells): the whole-reference row by brute force, bytes, the figure."""

import numpy as np
import pandas as pd
import pytest
from sklearn.neighbors import NearestNeighbors

from cellquery.bench.meta_cells import COLUMNS, MetaCellSettings, measure, plot_meta_cells
from cellquery.bench.synthetic import make_queries, make_world, reference_sample
from cellquery.errors import InputError
from cellquery.metrics.balanced_accuracy import mean_balanced_accuracy

SCALE = {"dim": 8, "seed": 0, "meta_cells": {"n_reference": 3000, "n_query": 600, "k": 5, "quantile": 0.99,
                                               "reductions": [{"method": "kmeans", "n": 100}, {"method": "sketch", "n": 100}]}}


@pytest.fixture(scope="module")
def table():
    return measure(MetaCellSettings.from_config(SCALE))


def test_whole_reference_row_equals_a_brute_force_majority_vote(table):
    world = make_world(8, 0)
    X, labels = reference_sample(3000, 8, 0, world=world)
    Q, truth = make_queries(600, 8, 0, world=world)
    labels, truth = labels.astype(str), truth.astype(str)
    nn = NearestNeighbors(n_neighbors=5, algorithm="brute").fit(X)
    cutoff = np.quantile(nn.kneighbors(X)[0], 0.99)
    distances, ids = nn.kneighbors(Q)
    predictions = []
    for d, row in zip(distances, ids):
        hits = labels[row[d <= cutoff]]
        if len(hits) == 0:
            predictions.append("rejected")
            continue
        names, counts = np.unique(hits, return_counts=True)
        predictions.append(names[counts.argmax()] if counts.max() / len(hits) > 0.5 else "ambiguous")
    expected = mean_balanced_accuracy(truth, np.array(predictions), set(labels))
    whole = table[table["method"] == "none"].iloc[0]
    assert whole["mba_positive"] == pytest.approx(expected["positive"], abs=1e-9)
    assert whole["mba_negative"] == pytest.approx(expected["negative"], abs=1e-9)
    # the whole reference: a float32 vector (8 x 4 bytes) and one label entry (8 bytes) per cell
    assert whole["bytes_per_cell"] == 8 * 4 + 8


def test_reductions_cost_fewer_bytes_and_the_figure_is_drawn(table, tmp_path):
    assert list(table.columns) == COLUMNS
    assert list(table["method"]) == ["none", "kmeans", "sketch"]
    reduced = table[table["method"] != "none"]
    assert (reduced["n_meta"] <= 100).all()
    assert (reduced["bytes_per_cell"] < table["bytes_per_cell"].iloc[0] / 10).all()
    assert reduced[["mba_positive", "mba_negative"]].notna().all().all()
    plot_meta_cells(table, tmp_path / "meta_cells.png")
    assert (tmp_path / "meta_cells.png").read_bytes()[:4] == b"\x89PNG"


def test_a_reduction_larger_than_the_reference_is_named():
    bad = {"meta_cells": {"n_reference": 50, "reductions": [{"method": "kmeans", "n": 60}]}}
    with pytest.raises(InputError, match="kmeans n = 60 exceeds n_reference = 50"):
        MetaCellSettings.from_config(bad)
