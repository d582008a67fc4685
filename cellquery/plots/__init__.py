"""Figures of the benchmark (one module per figure)."""

from __future__ import annotations

from cellquery.io import atomic_path


def save_png(fig, path, dpi: int = 120) -> None:
    """Write ``fig`` to ``path`` as PNG atomically (nothing is left behind on failure) and close it."""
    import matplotlib.pyplot as plt

    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
