"""The spatial GNN's learning-curve table and figure, on hand-made curves."""

import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.plots.spatial_pretraining import loss_curve_table, plot_spatial_pretraining

RECORDS = [
    {"group": "sp", "method": "gnn_pretrained_fast", "arm": "gnn_pretrained", "seed": 0,
     "curves": {"pretrain": [2.0, 1.5, 1.0], "finetune": np.array([1.2, 0.6])}},
    {"group": "sp", "method": "gnn_fast", "arm": "gnn", "seed": 1, "curves": {"finetune": [1.4, 0.9]}},
    {"group": "sp", "method": "gnn_fast", "arm": "gnn", "seed": 2, "curves": {}},  # nothing recorded: no rows
]


def test_loss_curve_table():
    table = loss_curve_table(RECORDS)
    assert list(table.columns) == ["group", "method", "arm", "seed", "phase", "epoch", "loss"]
    assert table[["method", "seed", "phase", "epoch", "loss"]].values.tolist() == [
        ["gnn_pretrained_fast", 0, "pretrain", 1, 2.0],
        ["gnn_pretrained_fast", 0, "pretrain", 2, 1.5],
        ["gnn_pretrained_fast", 0, "pretrain", 3, 1.0],
        ["gnn_pretrained_fast", 0, "finetune", 1, 1.2],
        ["gnn_pretrained_fast", 0, "finetune", 2, 0.6],
        ["gnn_fast", 1, "finetune", 1, 1.4],
        ["gnn_fast", 1, "finetune", 2, 0.9],
    ]
    assert (table["arm"] == table["method"].map({"gnn_pretrained_fast": "gnn_pretrained", "gnn_fast": "gnn"})).all()
    assert loss_curve_table([]).empty
    with pytest.raises(InputError, match="sp/gnn_fast/seed1: unknown phase 'warmup'"):
        loss_curve_table([dict(RECORDS[1], curves={"warmup": [1.0]})])


def test_plot_spatial_pretraining_writes_a_png(tmp_path):
    path = tmp_path / "spatial_pretraining.png"
    plot_spatial_pretraining(loss_curve_table(RECORDS), path, groups=["sp"])
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    empty = tmp_path / "empty.png"
    plot_spatial_pretraining(pd.DataFrame(columns=["group", "method", "arm", "seed", "phase", "epoch", "loss"]), empty, groups=["sp"])
    assert empty.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
