"""scanpy's bundled pbmc68k_reduced: 700 PBMCs with 10 bulk labels, offline.

``sc.datasets.pbmc68k_reduced()`` reads ``10x_pbmc68k_reduced.h5ad`` from
inside the scanpy package (no download). Its ``.X`` is z-scored (scaled per
gene, negative values), while ``.raw.X`` holds the log-normalised values
``log1p(count / n_counts * 1e4)`` over the same 765 genes; those are what this
loader returns. There are no raw counts and no batch column.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellquery.errors import InputError

# bulk_labels -> closest Cell Ontology term (ids checked against the CL release
# shipped by cellxgene-ontology-guide).
BULK_LABEL_TO_CL: dict[str, str] = {
    "CD14+ Monocyte": "CL:0001054",  # CD14-positive monocyte
    "CD19+ B": "CL:0001201",  # B cell, CD19-positive
    "CD34+": "CL:0008001",  # hematopoietic precursor cell
    "CD4+/CD25 T Reg": "CL:0000792",  # CD4-positive, CD25-positive, alpha-beta regulatory T cell
    "CD4+/CD45RA+/CD25- Naive T": "CL:0000895",  # naive thymus-derived CD4-positive, alpha-beta T cell
    "CD4+/CD45RO+ Memory": "CL:0000897",  # CD4-positive, alpha-beta memory T cell
    "CD56+ NK": "CL:0000623",  # natural killer cell
    "CD8+ Cytotoxic T": "CL:0000794",  # CD8-positive, alpha-beta cytotoxic T cell
    "CD8+/CD45RA+ Naive Cytotoxic": "CL:0000900",  # naive thymus-derived CD8-positive, alpha-beta T cell
    "Dendritic": "CL:0000451",  # dendritic cell
}

KEEP_OBS = ("n_counts", "n_genes", "percent_mito", "S_score", "G2M_score", "phase")


def pbmc68k_path() -> Path:
    """Path of the h5ad file inside the installed scanpy package."""
    import scanpy.datasets

    return Path(scanpy.datasets.__file__).parent / "10x_pbmc68k_reduced.h5ad"


def load_pbmc68k_reduced() -> ad.AnnData:
    """Load pbmc68k_reduced with log-normalised values and Cell Ontology ids.

    Returns
    -------
    AnnData (700 cells x 765 genes) with CSR float32 ``X`` =
    ``log1p(count / n_counts * 1e4)`` (from the file's ``.raw``); obs
    ``cell_type`` (= ``bulk_labels``, categorical), ``cell_ontology_id`` and
    the QC columns in :data:`KEEP_OBS`; ``uns["values"] = "log-normalised"``.
    """
    path = pbmc68k_path()
    if not path.exists():
        raise InputError(f"{path}: scanpy's bundled pbmc68k_reduced file is missing")
    import scanpy as sc

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = sc.datasets.pbmc68k_reduced()  # reads ``path``; no download
    if src.raw is None:
        raise InputError(f"{path}: .raw (log-normalised values) is missing")
    x = src.raw.X
    x = sp.csr_matrix(x, dtype=np.float32) if sp.issparse(x) else sp.csr_matrix(np.asarray(x, dtype=np.float32))
    labels = src.obs["bulk_labels"].astype(str)
    unknown = sorted(set(labels) - set(BULK_LABEL_TO_CL))
    if unknown:
        raise InputError(f"{path}: obs 'bulk_labels' has labels without a Cell Ontology id: {unknown}")
    obs = pd.DataFrame(index=src.obs_names.copy())
    obs["cell_type"] = pd.Categorical(labels, categories=sorted(BULK_LABEL_TO_CL))
    obs["cell_ontology_id"] = labels.map(BULK_LABEL_TO_CL).to_numpy()
    for col in KEEP_OBS:
        if col in src.obs:
            obs[col] = src.obs[col].values
    var = pd.DataFrame(index=src.raw.var_names.copy())
    adata = ad.AnnData(X=x, obs=obs, var=var)
    adata.uns["values"] = "log-normalised"
    adata.uns["source"] = "scanpy:pbmc68k_reduced"
    return adata
