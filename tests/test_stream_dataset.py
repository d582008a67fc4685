"""An h5ad source above preprocess.backed_above_cells is copied with its matrix untouched (cellquery.data.stream)."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cellquery.errors import InputError
from cellquery.validate import write_checked_dataset


def source(path, n=120, fmt="csr"):
    rng = np.random.default_rng(0)
    x = sp.random(n, 40, density=0.3, format=fmt, random_state=1, data_rvs=lambda k: rng.integers(1, 9, k)).astype(np.float32)
    adata = ad.AnnData(X=x, obs=pd.DataFrame({"cell_type": rng.choice(["B", "T", "NK"], n)}, index=[f"c{i}" for i in range(n)]),
                       var=pd.DataFrame(index=[f"g{j}" for j in range(40)]))
    adata.uns["note"] = "kept"
    adata.write_h5ad(path)
    return path


def test_streamed_copy_reads_as_the_in_memory_load(tmp_path):
    spec = {"source": str(source(tmp_path / "atlas.h5ad")), "values": "counts"}
    write_checked_dataset("atlas", spec, tmp_path / "streamed.h5ad", stream_above=50)
    write_checked_dataset("atlas", spec, tmp_path / "memory.h5ad", stream_above=10**6)
    streamed, memory = ad.read_h5ad(tmp_path / "streamed.h5ad"), ad.read_h5ad(tmp_path / "memory.h5ad")
    assert list(streamed.obs_names) == list(memory.obs_names) == [f"atlas:c{i}" for i in range(120)]
    pd.testing.assert_frame_equal(streamed.obs, memory.obs, check_categorical=False)
    assert (streamed.obs["dataset"].astype(str) == "atlas").all()
    assert streamed.uns["values"] == memory.uns["values"] == "counts" and streamed.uns["note"] == "kept"
    assert sp.issparse(streamed.X) and streamed.X.format == "csr"
    assert (streamed.X != memory.X).nnz == 0 and list(streamed.var_names) == list(memory.var_names)


def test_a_column_stored_matrix_above_the_bound_is_refused_and_nothing_written(tmp_path):
    spec = {"source": str(source(tmp_path / "atlas.h5ad", fmt="csc")), "values": "counts"}
    with pytest.raises(InputError, match=r"atlas\.h5ad: X is stored by columns \(CSC\).*datasets\.atlas\.source"):
        write_checked_dataset("atlas", spec, tmp_path / "out" / "atlas.h5ad", stream_above=50)
    assert not list((tmp_path / "out").glob("*")) if (tmp_path / "out").exists() else True
    # below the bound it is read into memory and stored by rows, as before
    write_checked_dataset("atlas", spec, tmp_path / "small.h5ad", stream_above=10**6)
    assert ad.read_h5ad(tmp_path / "small.h5ad").X.format == "csr"


def test_bad_input_is_caught_before_the_copy(tmp_path):
    path = source(tmp_path / "atlas.h5ad")
    adata = ad.read_h5ad(path)
    adata.X = adata.X * 0.5  # not counts, declared as counts
    adata.write_h5ad(path)
    spec = {"source": str(path), "values": "counts"}
    with pytest.raises(InputError, match=r"atlas\.h5ad.*"):
        write_checked_dataset("atlas", spec, tmp_path / "out.h5ad", stream_above=50)
    assert not (tmp_path / "out.h5ad").exists() and not list(tmp_path.glob(".out.h5ad*"))
