"""Datasets: loading declared sources, the simulator, and bundled real data."""

from cellquery.data.sources import load_dataset, select_cells, split_cells

__all__ = ["load_dataset", "select_cells", "split_cells"]
