"""Figure: learning curves of the spatial GNN (SpatialSSL's pretrained vs not pretrained comparison).

Each GNN run keeps its losses per epoch (:class:`cellquery.predictors.MethodResult`
``curves``, the query embedding file's ``uns["loss_curves"]``): ``pretrain``, the
masked-expression reconstruction loss (MSE on the masked cells) of ``gnn_pretrained``,
and ``finetune``, the cross-entropy on the labelled reference cells of both arms.
One row of panels per spatial group: pretraining on the left, fine-tuning on the
right, one line per run (method x seed), one colour per method, losses on a
log scale.
"""

from __future__ import annotations

from collections.abc import Iterable

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cellquery.errors import InputError
from cellquery.plots import distinct_colours, legend, save_message_png, save_png

PHASES = {"pretrain": "masked pretraining: reconstruction MSE", "finetune": "fine-tuning: cross-entropy"}
COLUMNS = ["group", "method", "arm", "seed", "phase", "epoch", "loss"]
ARM_NAMES = {"gnn_pretrained": "pretrained", "gnn": "not pretrained"}


def loss_curve_table(records: Iterable[dict]) -> pd.DataFrame:
    """Tidy losses: one row per run, phase and epoch (1-based), columns :data:`COLUMNS`.

    ``records``: dicts with ``group``, ``method``, ``arm`` (the predictor:
    ``gnn`` or ``gnn_pretrained``), ``seed`` and ``curves`` ({phase: losses per
    epoch}). Phases other than :data:`PHASES` are an :class:`InputError`.
    """
    parts = []
    for record in records:
        for phase, losses in record["curves"].items():
            if phase not in PHASES:
                raise InputError(f"loss curves of {record['group']}/{record['method']}/seed{record['seed']}: unknown phase {phase!r}")
            losses = np.asarray(losses, dtype=np.float64).ravel()
            parts.append(pd.DataFrame({
                "group": str(record["group"]), "method": str(record["method"]), "arm": str(record["arm"]),
                "seed": int(record["seed"]), "phase": phase, "epoch": np.arange(1, len(losses) + 1), "loss": losses,
            }))
    if not parts:
        return pd.DataFrame(columns=COLUMNS)
    return pd.concat(parts, ignore_index=True)[COLUMNS]


def plot_spatial_pretraining(table: pd.DataFrame, path, groups: Iterable[str] | None = None) -> None:
    """Losses per epoch of :func:`loss_curve_table`: a row per group, a panel per phase, a line per run."""
    groups = [g for g in (groups if groups is not None else dict.fromkeys(table["group"])) if (table["group"] == g).any()]
    if not groups:
        save_message_png(path, "no spatial GNN run with loss curves")
        return
    colours = distinct_colours(table["method"])
    arm_of = dict(zip(table["method"], table["arm"]))
    fig, axes = plt.subplots(len(groups), len(PHASES), figsize=(5.0 * len(PHASES), 3.6 * len(groups) + 0.6),
                             squeeze=False, layout="constrained")
    for axs, group in zip(axes, groups):
        mine = table[table["group"] == group]
        for ax, (phase, title) in zip(axs, PHASES.items()):
            rows = mine[mine["phase"] == phase]
            if rows.empty:
                ax.text(0.5, 0.5, "no run has this phase", ha="center", va="center", transform=ax.transAxes)
            for (method, seed), run in rows.groupby(["method", "seed"], sort=True):
                ax.plot(run["epoch"], run["loss"], color=colours[method], linewidth=1.5, alpha=0.85)
            if not rows.empty and (rows["loss"] > 0).all():  # log scale: the late epochs' differences stay visible
                ax.set_yscale("log")
            ax.set(xlabel="epoch", ylabel="training loss")
            ax.set_title(f"{group}: {title}", fontsize=9)
            ax.grid(alpha=0.3)
    handles = [plt.Line2D([], [], color=colours[m], linewidth=2, label=f"{m} ({ARM_NAMES.get(arm_of[m], arm_of[m])})")
               for m in sorted(colours)]
    legend(fig, handles, "method (one line per seed)", side="bottom")
    save_png(fig, path)
