"""Transferred against measured expression of held-out genes (results/figures/expression_transfer.png)."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from cellquery.plots import mark_no_data, save_png


NO_GENES = "no held-out genes\n(every gene that varies in the reference is in the HVG list)"


def plot_expression_transfer(panels: list[tuple[str, str, pd.DataFrame]], path, n_genes: int = 4) -> None:
    """One row per (group, run name), one scatter per gene: measured (x) against transferred (y) expression.

    ``panels`` holds ``(group, shown name, values)``, ``values`` with columns
    ``gene``, ``measured``, ``transferred`` (one row per query cell and gene,
    genes in the order to show; the first ``n_genes`` are drawn). Each title
    gives the gene and Pearson's r over its cells; the dotted line is y = x. A
    run without held-out genes (``values`` empty) gets a row saying so.
    """
    rows = max(1, len(panels))
    fig, axes = plt.subplots(rows, n_genes, figsize=(3.0 * n_genes, 3.0 * rows), squeeze=False, layout="constrained")
    if not panels:
        for ax in axes[0]:
            mark_no_data(ax)
    for row, (group, name, values) in zip(axes, panels):
        genes = list(dict.fromkeys(values["gene"]))[:n_genes]
        for ax, gene in zip(row, genes + [None] * (n_genes - len(genes))):
            if gene is None:  # a group with fewer held-out genes than panels: the row says so once
                ax.set_axis_off()
                if not genes and ax is row[0]:
                    ax.text(0.0, 0.5, f"{group} / {name}: {NO_GENES}", ha="left", va="center", fontsize=9,
                            transform=ax.transAxes, in_layout=False)  # spans the blank panels beside it
                continue
            part = values[values["gene"] == gene].dropna()
            x, y = part["measured"].to_numpy(float), part["transferred"].to_numpy(float)
            r = np.corrcoef(x, y)[0, 1] if len(x) > 1 and np.ptp(x) > 0 and np.ptp(y) > 0 else np.nan
            ax.scatter(x, y, s=4, alpha=0.4, color="tab:blue", edgecolor="none")
            top = max(float(np.max(x, initial=0)), float(np.max(y, initial=0)), 1e-9)
            ax.plot([0, top], [0, top], ":", color="grey", linewidth=1)
            ax.set_title(f"{group} / {name}\n{gene}: r = {r:.2f}", fontsize=8)
            ax.set_xlabel("measured (log-normalised)", fontsize=8)
            ax.set_ylabel("transferred through M", fontsize=8)
            ax.tick_params(labelsize=7)
    save_png(fig, path)
