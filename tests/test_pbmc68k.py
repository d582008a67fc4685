"""Tests of the bundled pbmc68k_reduced loader (cellquery.data.pbmc68k)."""

from __future__ import annotations

import socket
import warnings

import anndata as ad
import numpy as np
import pytest
import scipy.sparse as sp

from cellquery.data.pbmc68k import BULK_LABEL_TO_CL, load_pbmc68k_reduced, pbmc68k_path
from cellquery.ontology import load_cell_ontology

# the Cell Ontology label each bulk label is meant to map to, written out by hand
EXPECTED_LABELS = {
    "CD14+ Monocyte": "CD14-positive monocyte",
    "CD19+ B": "B cell, CD19-positive",
    "CD34+": "hematopoietic precursor cell",
    "CD4+/CD25 T Reg": "CD4-positive, CD25-positive, alpha-beta regulatory T cell",
    "CD4+/CD45RA+/CD25- Naive T": "naive thymus-derived CD4-positive, alpha-beta T cell",
    "CD4+/CD45RO+ Memory": "CD4-positive, alpha-beta memory T cell",
    "CD56+ NK": "natural killer cell",
    "CD8+ Cytotoxic T": "CD8-positive, alpha-beta cytotoxic T cell",
    "CD8+/CD45RA+ Naive Cytotoxic": "naive thymus-derived CD8-positive, alpha-beta T cell",
    "Dendritic": "dendritic cell",
}


@pytest.fixture(scope="module")
def pbmc() -> ad.AnnData:
    return load_pbmc68k_reduced()


@pytest.fixture(scope="module")
def source() -> ad.AnnData:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the file predates the current h5ad format
        return ad.read_h5ad(pbmc68k_path())


def test_loads_offline(monkeypatch):
    assert pbmc68k_path().is_file()

    def refuse(*args, **kwargs):
        raise OSError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    adata = load_pbmc68k_reduced()
    assert adata.shape == (700, 765)


def test_layout(pbmc, source):
    assert pbmc.shape == (700, 765)
    assert isinstance(pbmc.X, sp.csr_matrix) and pbmc.X.dtype == np.float32
    assert list(pbmc.var_names) == list(source.raw.var_names)
    assert list(pbmc.obs_names) == list(source.obs_names)
    assert pbmc.obs["cell_type"].dtype.name == "category"
    assert pbmc.uns["values"] == "log-normalised"
    for col in ("n_counts", "percent_mito"):
        assert np.array_equal(pbmc.obs[col].to_numpy(), source.obs[col].to_numpy())


def test_every_label_mapped(pbmc, source):
    labels = source.obs["bulk_labels"].astype(str)
    assert set(labels) == set(BULK_LABEL_TO_CL) and len(BULK_LABEL_TO_CL) == 10
    assert np.array_equal(pbmc.obs["cell_type"].astype(str).to_numpy(), labels.to_numpy())
    expected = labels.map(BULK_LABEL_TO_CL).to_numpy()
    assert np.array_equal(pbmc.obs["cell_ontology_id"].to_numpy(), expected)
    assert pbmc.obs["cell_ontology_id"].notna().all()


def test_ontology_ids_exist():
    cl = load_cell_ontology()
    for label, cid in BULK_LABEL_TO_CL.items():
        assert cid in cl and not cl.is_deprecated(cid), cid
        assert cl.label(cid) == EXPECTED_LABELS[label]
    t_cells = ["CD4+/CD25 T Reg", "CD4+/CD45RA+/CD25- Naive T", "CD4+/CD45RO+ Memory", "CD8+ Cytotoxic T",
               "CD8+/CD45RA+ Naive Cytotoxic"]
    assert all("CL:0000084" in cl.ancestors(BULK_LABEL_TO_CL[k]) for k in t_cells)


def test_values_are_log_normalised(pbmc, source):
    # the file's .X is z-scored (negative values, gene means ~0); the loader must not return it
    assert np.asarray(source.X).min() < 0
    assert np.abs(np.asarray(source.X).mean(axis=0)).max() < 0.1
    x = pbmc.X.tocoo()
    assert x.data.min() > 0 and x.nnz < 0.6 * np.prod(pbmc.shape)
    # log1p(count / n_counts * 1e4): undoing it gives whole counts >= 1
    counts = np.expm1(x.data.astype(np.float64)) * pbmc.obs["n_counts"].to_numpy()[x.row] / 1e4
    err = np.abs(counts - np.round(counts))
    assert counts.min() > 0.9 and err.max() < 0.15 and np.mean(err < 0.02) > 0.99
    # the 765 kept genes are a subset, so row sums of expm1 stay below the 1e4 target
    sums = np.asarray(np.expm1(pbmc.X.astype(np.float64)).sum(axis=1)).ravel()
    assert (sums < 1e4).all() and (sums > 0.05 * 1e4).all()
