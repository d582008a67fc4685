"""Hits across reference datasets (Cell BLAST Supp. Fig. 9e): units, the size-adjusted entropy by hand, the run table."""

import math

import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.metrics.hit_datasets import (
    HIT_DATASET_COLUMNS, hit_datasets, hit_unit_key, size_adjusted_entropy, unit_hit_counts,
)

RUN = dict(group="g", method="m", index="flat", transfer="majority", seed=0, reported_as="m")
PNG = b"\x89PNG\r\n\x1a\n"


def test_unit_key_datasets_then_batches():
    obs = pd.DataFrame({"dataset": ["d1", "d1", "d2"], "study": ["s1", "s2", "s2"]})
    assert hit_unit_key(obs, "study") == "dataset"
    assert hit_unit_key(obs.assign(dataset="d1"), "study") == "study"  # one dataset: its studies
    assert hit_unit_key(obs.assign(dataset="d1", study="s1"), "study") is None  # one study too
    assert hit_unit_key(obs.assign(dataset="d1"), None) is None  # no batch key
    assert hit_unit_key(obs.drop(columns="dataset"), "study") == "study"


def test_size_adjusted_entropy_by_hand():
    sizes = np.array([30, 10])  # size fractions 0.75, 0.25
    counts = np.array([
        [3, 1],  # hit fractions 0.75, 0.25 = the sizes: w = (1/2, 1/2), H = 1
        [4, 0],  # all in one unit: H = 0
        [2, 2],  # p/s = (0.5/0.75, 0.5/0.25) = (2/3, 2): w = (1/4, 3/4)
        [0, 0],  # no hits: NaN
    ])
    h = size_adjusted_entropy(counts, sizes)
    expected = -(0.25 * math.log(0.25) + 0.75 * math.log(0.75)) / math.log(2)
    assert h[:3] == pytest.approx([1.0, 0.0, expected]) and np.isnan(h[3])
    assert expected == pytest.approx(0.8112781)
    # three equal units, hits 2 / 1 / 1: w = (1/2, 1/4, 1/4), H = 1.5 bits / log2(3)
    assert size_adjusted_entropy([[2, 1, 1]], [5, 5, 5])[0] == pytest.approx(1.5 / math.log2(3))
    with pytest.raises(InputError, match=">= 2 units"):
        size_adjusted_entropy([[1]], [3])


def test_unit_hit_counts_skip_missing_hits():
    reference_units = np.array(["a", "b", "a", "c"])
    counts = unit_hit_counts(np.array([[0, 2, -1], [1, 3, 0]]), reference_units, np.array(["a", "b", "c"]))
    np.testing.assert_array_equal(counts, [[2, 0, 0], [1, 1, 1]])
    with pytest.raises(InputError, match="hit index 7"):
        unit_hit_counts(np.array([[7]]), reference_units, np.array(["a", "b", "c"]))


def test_hit_datasets_table_by_hand():
    # reference: 3 cells of study s1, 1 of s2 (sizes 0.75 / 0.25)
    obs = pd.DataFrame({"study": ["s1", "s1", "s1", "s2"], "dataset": "ref"})
    indices = np.array([
        [0, 1, 2, 3],  # hits 3 / 1: H = 1
        [0, 1, 2, 0],  # 4 / 0: H = 0
        [-1, -1, -1, -1],  # no hits: not counted
    ])
    table = hit_datasets(indices, obs, "study", run=RUN)
    assert list(table.columns) == HIT_DATASET_COLUMNS
    rows = table.set_index("unit")
    assert rows["n_reference"].to_dict() == {"s1": 3, "s2": 1}
    assert rows["n_hits"].to_dict() == {"s1": 7, "s2": 1}
    assert rows.loc["s1", "hit_fraction"] == pytest.approx(7 / 8)
    assert rows.loc["s2", "ratio"] == pytest.approx((1 / 8) / (1 / 4))
    assert np.allclose(rows["entropy"], 0.5) and (rows["n_query_cells"] == 2).all()
    assert (table["unit_key"] == "study").all() and (table["method"] == "m").all()


def test_plot_hit_datasets(tmp_path):
    from cellquery.plots.hit_datasets import hit_labels, plot_hit_datasets

    obs = pd.DataFrame({"study": ["s1", "s1", "s1", "s2"]})
    rng = np.random.default_rng(0)
    parts = []
    for method, index, transfer in (("pca", "flat", "majority"), ("pca", "flat", "calibrated"), ("pca", "ivfpq", "majority"),
                                    ("cellblast", "native", "native")):
        for seed in (0, 1):
            run = {**RUN, "method": method, "index": index, "transfer": transfer, "seed": seed, "reported_as": method}
            parts.append(hit_datasets(rng.integers(0, 4, (5, 3)), obs, "study", run=run))
    table = pd.concat(parts, ignore_index=True)
    assert set(hit_labels(table)) == {"pca / flat", "pca / ivfpq", "cellblast"}
    plot_hit_datasets(table, tmp_path / "hits.png", controls=["cellblast"])
    plot_hit_datasets(table.iloc[:0], tmp_path / "empty.png")
    assert (tmp_path / "hits.png").read_bytes()[:8] == PNG and (tmp_path / "empty.png").read_bytes()[:8] == PNG
