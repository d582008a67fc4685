"""An atlas-sized h5ad source written to ``results/data/<dataset>.h5ad`` without reading its matrix.

:func:`cellquery.data.sources.load_dataset` reads a dataset whole; a file with
more cells than ``preprocess.backed_above_cells`` is instead copied byte for
byte and only its ``obs`` (names prefixed with the dataset name, column
``dataset``) and ``uns["values"]`` are rewritten in the copy, so that memory
stays at the size of ``obs`` whatever the matrix holds. The result reads as
the in-memory path's would (tested); later steps read its rows in chunks
(:mod:`cellquery.backed`), which needs the matrix stored by rows (CSR or
dense). anndata has no in-place "rename the cells of a file" operation;
this module does it with ``anndata.io.read_elem``/``write_elem`` on the copy.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pandas as pd

from cellquery.errors import InputError
from cellquery.io import atomic_path


def stream_dataset(name: str, source: str | os.PathLike, dest: str | os.PathLike, *, values: str) -> None:
    """Write dataset ``name`` from the h5ad file ``source`` to ``dest`` (module docstring); nothing is left on error."""
    import h5py
    from anndata.io import read_elem, write_elem

    source = Path(source)
    with h5py.File(source, "r") as f:
        encoding = f["X"].attrs.get("encoding-type", "array") if "X" in f else None
    if encoding in ("csc_matrix", "csc_array"):
        raise InputError(
            f"{source}: X is stored by columns (CSC), and a dataset this large is read by rows in chunks "
            f"(config: datasets.{name}.source); write it by rows (adata.X = adata.X.tocsr()) or raise preprocess.backed_above_cells"
        )
    with atomic_path(dest) as tmp:
        shutil.copyfile(source, tmp)
        with h5py.File(tmp, "r+") as f:
            obs = read_elem(f["obs"])
            obs.index = [f"{name}:{o}" for o in obs.index.astype(str)]
            obs["dataset"] = pd.Categorical([name] * len(obs))  # as write_h5ad stores the in-memory path's column
            uns = read_elem(f["uns"]) if "uns" in f else {}
            uns["values"] = values
            for key, value in (("obs", obs), ("uns", uns)):
                if key in f:
                    del f[key]
                write_elem(f, key, value)
