"""Spatial data: a 10x Visium / Space Ranger output folder or a spatial h5ad, as one AnnData.

Spatial datasets carry what every other dataset carries plus
``obsm["spatial"]`` (x, y coordinates, one row per spot or cell) and an obs
column naming the *section* each cell lies on (``section_key``; SpatialSSL's
"images": graphs are built per section, and no edge joins two sections).

Readers used:

* The count matrix is read by :func:`scanpy.read_10x_h5`
  (``filtered_feature_bc_matrix.h5``) or :func:`scanpy.read_10x_mtx`
  (``filtered_feature_bc_matrix/``, whose ``.gz`` members scanpy reads itself).
* Hand-written: a gzipped ``filtered_feature_bc_matrix.h5.gz`` (as shipped in
  Seurat's test data) is decompressed to a temporary file first, since h5py
  cannot read through gzip; and the spot positions are read here with pandas
  instead of :func:`scanpy.read_visium`, which requires an uncompressed
  ``tissue_positions*.csv`` and the tissue images, neither of which a
  stripped-down folder has. Both position layouts are accepted: Space Ranger
  < 2.0 ``tissue_positions_list.csv`` (no header) and >= 2.0
  ``tissue_positions.csv`` (header), each optionally gzipped. Columns:
  barcode, in_tissue, array_row, array_col, pxl_row_in_fullres,
  pxl_col_in_fullres. ``obsm["spatial"]`` is (pxl_col, pxl_row), i.e. (x, y)
  in full-resolution pixels, as scanpy writes it.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import tempfile
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd

from cellquery.errors import InputError

SPATIAL_KEY = "spatial"
DEFAULT_SECTION_KEY = "section"
POSITION_COLUMNS = ("barcode", "in_tissue", "array_row", "array_col", "pxl_row_in_fullres", "pxl_col_in_fullres")
POSITION_FILES = (
    "tissue_positions.csv",
    "tissue_positions.csv.gz",
    "tissue_positions_list.csv",
    "tissue_positions_list.csv.gz",
)


def _first_existing(folder: Path, names) -> Path | None:
    for name in names:
        if (folder / name).exists():
            return folder / name
    return None


def read_visium_counts(folder: str | os.PathLike) -> ad.AnnData:
    """The filtered count matrix of a Space Ranger folder (h5, gzipped h5, or the mtx folder)."""
    import scanpy as sc

    folder = Path(folder)
    h5 = _first_existing(folder, ("filtered_feature_bc_matrix.h5", "filtered_feature_bc_matrix.h5.gz"))
    if h5 is not None and h5.suffix == ".h5":
        adata = sc.read_10x_h5(h5)
    elif h5 is not None:  # hand-written: h5py needs a seekable uncompressed file
        with tempfile.TemporaryDirectory() as tmp:
            plain = Path(tmp) / "filtered_feature_bc_matrix.h5"
            with gzip.open(h5, "rb") as src, open(plain, "wb") as dst:
                shutil.copyfileobj(src, dst)
            adata = sc.read_10x_h5(plain)
    elif (folder / "filtered_feature_bc_matrix").is_dir():
        adata = sc.read_10x_mtx(folder / "filtered_feature_bc_matrix", var_names="gene_symbols", make_unique=True)
    else:
        raise InputError(
            f"{folder}: no filtered_feature_bc_matrix.h5(.gz) or filtered_feature_bc_matrix/ folder; "
            "point the source at a Space Ranger 'outs' folder"
        )
    adata.var_names_make_unique()
    return adata


def read_tissue_positions(folder: str | os.PathLike) -> pd.DataFrame:
    """Spot positions of a Space Ranger folder, indexed by barcode (columns :data:`POSITION_COLUMNS`)."""
    spatial_dir = Path(folder) / "spatial"
    path = _first_existing(spatial_dir, POSITION_FILES)
    if path is None:
        raise InputError(f"{spatial_dir}: none of {list(POSITION_FILES)} found; a Visium folder needs spot positions")
    has_header = path.name.startswith("tissue_positions.csv")
    table = pd.read_csv(path, header=0 if has_header else None)  # compression from the suffix
    if table.shape[1] != len(POSITION_COLUMNS):
        raise InputError(f"{path}: expected {len(POSITION_COLUMNS)} columns {list(POSITION_COLUMNS)}, got {table.shape[1]}")
    table.columns = list(POSITION_COLUMNS)
    return table.set_index("barcode")


def read_visium(
    folder: str | os.PathLike, *, section: str | None = None, section_key: str = DEFAULT_SECTION_KEY, in_tissue_only: bool = True
) -> ad.AnnData:
    """One Visium section: counts, ``obsm["spatial"]`` (x, y pixels) and ``obs[section_key]``.

    Spots are those of the filtered matrix (all under tissue); a barcode of the
    matrix missing from the positions is an error. obs gains ``in_tissue``,
    ``array_row``, ``array_col``; ``uns["spatial"][section]["scalefactors"]``
    holds ``scalefactors_json.json`` when present.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder}: not a folder; a Visium source is a Space Ranger output folder")
    adata = read_visium_counts(folder)
    positions = read_tissue_positions(folder)
    missing = adata.obs_names.difference(positions.index)
    if len(missing):
        raise InputError(f"{folder}: {len(missing)} barcodes of the matrix have no position (e.g. {missing[0]})")
    positions = positions.loc[adata.obs_names]
    if in_tissue_only:
        keep = positions["in_tissue"].to_numpy() == 1
        adata, positions = adata[keep].copy(), positions.loc[keep]
    for col in ("in_tissue", "array_row", "array_col"):
        adata.obs[col] = positions[col].to_numpy()
    adata.obsm[SPATIAL_KEY] = positions[["pxl_col_in_fullres", "pxl_row_in_fullres"]].to_numpy(dtype=float)
    name = section or folder.name
    adata.obs[section_key] = pd.Categorical([name] * adata.n_obs)
    scalefactors = folder / "spatial" / "scalefactors_json.json"
    if scalefactors.exists():
        adata.uns[SPATIAL_KEY] = {name: {"scalefactors": json.loads(scalefactors.read_text())}}
    return adata


def check_spatial(adata: ad.AnnData, source: str | os.PathLike, section_key: str = DEFAULT_SECTION_KEY) -> None:
    """A spatial AnnData has finite (cells x 2 or 3) ``obsm["spatial"]`` and a section column."""
    if SPATIAL_KEY not in adata.obsm:
        raise InputError(f"{source}: no obsm['{SPATIAL_KEY}'] (spot/cell coordinates); a spatial dataset needs them")
    coords = np.asarray(adata.obsm[SPATIAL_KEY])
    if coords.ndim != 2 or coords.shape[1] not in (2, 3):
        raise InputError(f"{source}: obsm['{SPATIAL_KEY}'] must be cells x 2 (x, y) or x 3, got shape {coords.shape}")
    if not np.isfinite(coords.astype(float)).all():
        raise InputError(f"{source}: obsm['{SPATIAL_KEY}'] has missing or infinite coordinates")
    if section_key not in adata.obs:
        raise InputError(f"{source}: no obs column '{section_key}' (section_key) naming each cell's section")


def read_spatial_h5ad(path: str | os.PathLike, *, section_key: str | None = DEFAULT_SECTION_KEY) -> ad.AnnData:
    """A spatial h5ad, checked; ``section_key=None`` puts every cell on one section named after the file."""
    from cellquery.io import read_h5ad

    adata = read_h5ad(path)
    if section_key is None:
        section_key = DEFAULT_SECTION_KEY
        adata.obs[section_key] = pd.Categorical([Path(path).stem] * adata.n_obs)
    check_spatial(adata, path, section_key)
    return adata
