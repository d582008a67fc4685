"""Spatial loaders: a real Visium folder (Seurat's test data), an mtx folder, a spatial h5ad."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.io
import scipy.sparse as sp
import anndata as ad

from cellquery.data.spatial import check_spatial, read_spatial_h5ad, read_visium
from cellquery.errors import InputError

# Shipped by Debian's r-cran-seurat (installed by .ci/r/install.sh): 2,695 spots x 100 genes, gzipped.
SEURAT_VISIUM = Path("/usr/share/doc/r-cran-seurat/tests/testdata/visium")
needs_seurat_visium = pytest.mark.skipif(
    not (SEURAT_VISIUM / "filtered_feature_bc_matrix.h5.gz").exists(),
    reason=f"{SEURAT_VISIUM} absent: install Debian's r-cran-seurat (bash .ci/r/install.sh) for the real Visium folder",
)


@needs_seurat_visium
def test_read_visium_seurat_folder():
    adata = read_visium(SEURAT_VISIUM, section="slice1")
    assert adata.shape == (2695, 100)
    positions = pd.read_csv(SEURAT_VISIUM / "spatial" / "tissue_positions_list.csv.gz", header=None, index_col=0)
    expected = positions.loc[adata.obs_names, [5, 4]].to_numpy(dtype=float)  # (pxl_col, pxl_row) = (x, y)
    np.testing.assert_array_equal(adata.obsm["spatial"], expected)
    np.testing.assert_array_equal(adata.obs["array_row"].to_numpy(), positions.loc[adata.obs_names, 2].to_numpy())
    assert (adata.obs["section"] == "slice1").all()
    assert adata.uns["spatial"]["slice1"]["scalefactors"]["spot_diameter_fullres"] == pytest.approx(96.36, abs=0.01)
    counts = adata.X.toarray() if sp.issparse(adata.X) else adata.X
    assert np.all(counts >= 0) and np.all(counts == np.round(counts)) and counts.sum() > 0
    check_spatial(adata, SEURAT_VISIUM)


def _write_mtx_folder(folder: Path, counts: np.ndarray, barcodes, genes, positions: pd.DataFrame, header: bool) -> None:
    mtx = folder / "filtered_feature_bc_matrix"
    mtx.mkdir(parents=True)
    scipy.io.mmwrite(mtx / "matrix.mtx", sp.coo_matrix(counts.T))  # 10x: genes x barcodes
    for name, lines in (
        ("matrix.mtx", None),
        ("barcodes.tsv", [f"{b}\n" for b in barcodes]),
        ("features.tsv", [f"ENSG{i}\t{g}\tGene Expression\n" for i, g in enumerate(genes)]),
    ):
        text = (mtx / name).read_bytes() if lines is None else "".join(lines).encode()
        with gzip.open(mtx / f"{name}.gz", "wb") as out:
            out.write(text)
        if lines is None:
            (mtx / name).unlink()
    (folder / "spatial").mkdir()
    name = "tissue_positions.csv" if header else "tissue_positions_list.csv"
    positions.to_csv(folder / "spatial" / name, header=header, index=False)


@pytest.mark.parametrize("header", [True, False])
def test_read_visium_mtx_folder(tmp_path, header):
    rng = np.random.default_rng(0)
    counts = rng.poisson(2.0, (5, 4)).astype(float)
    barcodes = [f"BC{i}-1" for i in range(5)]
    genes = ["A", "B", "C", "D"]
    positions = pd.DataFrame(
        {
            "barcode": barcodes[::-1] + ["OUT-1"],  # order differs from the matrix; one spot off tissue
            "in_tissue": [1, 1, 1, 1, 1, 0],
            "array_row": [0, 1, 2, 3, 4, 5],
            "array_col": [0, 2, 4, 6, 8, 10],
            "pxl_row_in_fullres": [10, 20, 30, 40, 50, 60],
            "pxl_col_in_fullres": [100, 200, 300, 400, 500, 600],
        }
    )
    _write_mtx_folder(tmp_path, counts, barcodes, genes, positions, header)
    adata = read_visium(tmp_path)
    assert list(adata.obs_names) == barcodes and list(adata.var_names) == genes
    np.testing.assert_array_equal(adata.X.toarray(), counts)
    # BC0 is the 5th row of the positions: x = 500, y = 50
    np.testing.assert_array_equal(adata.obsm["spatial"][0], [500.0, 50.0])
    np.testing.assert_array_equal(adata.obsm["spatial"][4], [100.0, 10.0])


def test_read_visium_missing_parts(tmp_path):
    with pytest.raises(InputError, match="filtered_feature_bc_matrix"):
        read_visium(tmp_path)
    with pytest.raises(InputError, match="not a folder"):
        read_visium(tmp_path / "nope")


def test_read_spatial_h5ad(tmp_path):
    adata = ad.AnnData(np.ones((3, 2), dtype=np.float32))
    adata.obsm["spatial"] = np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]])
    adata.obs["slide"] = ["a", "a", "b"]
    path = tmp_path / "sections.h5ad"
    adata.write_h5ad(path)
    assert list(read_spatial_h5ad(path, section_key="slide").obs["slide"]) == ["a", "a", "b"]
    assert list(read_spatial_h5ad(path, section_key=None).obs["section"]) == ["sections"] * 3
    with pytest.raises(InputError, match="section_key"):
        read_spatial_h5ad(path, section_key="section")
    adata.obsm["spatial"][1, 0] = np.nan
    adata.write_h5ad(path)
    with pytest.raises(InputError, match="infinite"):
        read_spatial_h5ad(path, section_key="slide")
    del adata.obsm["spatial"]
    adata.write_h5ad(path)
    with pytest.raises(InputError, match="obsm"):
        read_spatial_h5ad(path, section_key="slide")
