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


# ------------------------------------------------- a simulated dataset above the bound
SIMULATED = {"source": "simulate", "values": "counts",
             "simulate": {"n_cells": 403, "studies": ["s1", "s2"], "donors_per_study": 2, "n_genes": 500, "seed": 3}}


def assert_same_dataset(streamed, memory):
    assert list(streamed.obs_names) == list(memory.obs_names) and streamed.obs_names[0].startswith("sim:")
    pd.testing.assert_frame_equal(streamed.obs, memory.obs)
    assert list(streamed.var_names) == list(memory.var_names)
    assert streamed.X.format == "csr" and streamed.X.dtype == memory.X.dtype == np.float32
    assert (streamed.X != memory.X).nnz == 0 and streamed.X.nnz == memory.X.nnz > 0
    assert streamed.uns["values"] == memory.uns["values"] == "counts"
    assert streamed.uns["simulation"]["cell_types"].tolist() == list(memory.uns["simulation"]["cell_types"])
    assert streamed.uns["simulation"]["n_cells"] == memory.uns["simulation"]["n_cells"] == 403


def test_a_simulated_dataset_above_the_bound_is_written_chunk_by_chunk(tmp_path, monkeypatch):
    import cellquery.data.simulate as simulate

    write_checked_dataset("sim", SIMULATED, tmp_path / "memory.h5ad", stream_above=10**6)
    stacked = []  # rows of every CSR matrix assembled while writing: one chunk at most
    real_stack = simulate._stack_csr
    monkeypatch.setattr(simulate, "_stack_csr", lambda blocks, n: stacked.append(sum(len(b[2]) for b in blocks)) or real_stack(blocks, n))
    monkeypatch.setattr(simulate, "CHUNK_CELLS", 32)  # counts are drawn (and written) 32 cells at a time
    write_checked_dataset("sim", SIMULATED, tmp_path / "streamed.h5ad", stream_above=400)
    assert stacked == [32, 32, 32, 5] * 3 + [32, 32, 32, 4]  # 403 cells over 4 donors, never more than a chunk
    assert_same_dataset(ad.read_h5ad(tmp_path / "streamed.h5ad"), ad.read_h5ad(tmp_path / "memory.h5ad"))


def test_a_simulated_atlas_past_32_bit_indices_is_stored_with_64_bit_ones(tmp_path, monkeypatch):
    import h5py

    import cellquery.backed as backed

    write_checked_dataset("sim", SIMULATED, tmp_path / "memory.h5ad", stream_above=10**6)
    monkeypatch.setattr(backed, "INT32_INDEX_LIMIT", 1000)  # as if cells x genes could pass 2^31
    write_checked_dataset("sim", SIMULATED, tmp_path / "streamed.h5ad", stream_above=400)
    with h5py.File(tmp_path / "streamed.h5ad") as f:
        assert f["X/indptr"].dtype == np.int64 and f["X/indptr"][-1] == f["X/data"].shape[0]
    assert_same_dataset(ad.read_h5ad(tmp_path / "streamed.h5ad"), ad.read_h5ad(tmp_path / "memory.h5ad"))


def test_a_streamed_simulation_is_checked_and_leaves_nothing_on_a_problem(tmp_path):
    from cellquery.settings import GroupSettings
    from cellquery.validate import Usage

    with pytest.raises(InputError, match=r"dataset sim: values must be one of .*datasets\.sim\.values"):
        write_checked_dataset("sim", {**SIMULATED, "values": "raw"}, tmp_path / "out.h5ad", stream_above=400)
    usage = [Usage("g", GroupSettings(label_key="cell_type", batch_keys=("tissue",)))]  # the simulator writes no tissue
    with pytest.raises(InputError, match=r"tissue"):
        write_checked_dataset("sim", SIMULATED, tmp_path / "out.h5ad", usage, stream_above=400)
    assert not list(tmp_path.iterdir())
