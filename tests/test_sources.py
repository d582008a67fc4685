"""Dataset sources: local h5ad, URL with checksum, split and exclude, declared values."""

import hashlib

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cellquery.data.sources import fetch_url, load_dataset, split_cells
from cellquery.errors import InputError


def small_counts(n=60, genes=30, seed=0):
    rng = np.random.default_rng(seed)
    x = sp.csr_matrix(rng.poisson(1.0, size=(n, genes)).astype(np.float32))
    obs = pd.DataFrame({"cell_type": np.repeat(["A", "B", "C"], n // 3)}, index=[f"c{i}" for i in range(n)])
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(genes)]))


def test_local_h5ad_with_split_and_exclude(tmp_path):
    path = tmp_path / "d.h5ad"
    small_counts().write_h5ad(path)
    spec = {"source": str(path), "values": "counts", "split": {"label_key": "cell_type", "fraction": 0.5, "part": 1, "seed": 3}}
    first = load_dataset("ref", spec)
    second = load_dataset("qry", {**spec, "split": {**spec["split"], "part": 2}})
    # 20 cells per type, half of each in each part, disjoint and complete
    assert first.n_obs == second.n_obs == 30
    names1 = {o.split(":", 1)[1] for o in first.obs_names}
    names2 = {o.split(":", 1)[1] for o in second.obs_names}
    assert not names1 & names2 and len(names1 | names2) == 60
    assert first.obs["cell_type"].value_counts().to_dict() == {"A": 10, "B": 10, "C": 10}
    assert (first.obs["dataset"] == "ref").all() and first.uns["values"] == "counts"
    held_out = load_dataset("ref", {**spec, "exclude": {"obs_key": "cell_type", "values": ["B"]}})
    assert set(held_out.obs["cell_type"]) == {"A", "C"} and held_out.n_obs == 20


def test_split_is_deterministic():
    a = split_cells(small_counts(), label_key="cell_type", fraction=0.3, part=1, seed=7)
    b = split_cells(small_counts(), label_key="cell_type", fraction=0.3, part=1, seed=7)
    c = split_cells(small_counts(), label_key="cell_type", fraction=0.3, part=1, seed=8)
    assert list(a.obs_names) == list(b.obs_names) != list(c.obs_names)


def test_declared_counts_must_be_integers(tmp_path):
    data = small_counts()
    data.X = data.X * 0.5
    path = tmp_path / "d.h5ad"
    data.write_h5ad(path)
    with pytest.raises(InputError, match="declared values: counts"):
        load_dataset("d", {"source": str(path), "values": "counts"})


def test_nan_values_are_rejected(tmp_path):
    data = small_counts()
    data.X = data.X.toarray()
    data.X[0, 0] = np.nan
    path = tmp_path / "d.h5ad"
    data.write_h5ad(path)
    with pytest.raises(InputError, match="non-finite"):
        load_dataset("d", {"source": str(path), "values": "log-normalised"})


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.h5ad"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(InputError, match="broken.h5ad: not a readable h5ad file"):
        load_dataset("d", {"source": str(path), "values": "counts"})


def test_unknown_exclude_value(tmp_path):
    path = tmp_path / "d.h5ad"
    small_counts().write_h5ad(path)
    with pytest.raises(InputError, match="exclude.values not found"):
        load_dataset("d", {"source": str(path), "values": "counts", "exclude": {"obs_key": "cell_type", "values": ["Z"]}})


def test_fetch_url_verifies_checksum_and_leaves_nothing_on_mismatch(tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"cellquery" * 100)
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "file.bin"
    with pytest.raises(InputError, match="sha256 mismatch"):
        fetch_url(src.as_uri(), "0" * 64, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert fetch_url(src.as_uri(), good, dest).read_bytes() == src.read_bytes()


def test_url_source_needs_checksum():
    with pytest.raises(InputError, match="needs a sha256"):
        load_dataset("d", {"source": "https://example.org/x.h5ad", "values": "counts"})


def test_local_checksum_is_verified(tmp_path):
    path = tmp_path / "d.h5ad"
    small_counts().write_h5ad(path)
    good = hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_dataset("d", {"source": str(path), "values": "counts", "sha256": good.upper()}).n_obs == 60
    with pytest.raises(InputError, match="sha256 mismatch for dataset d"):
        load_dataset("d", {"source": str(path), "values": "counts", "sha256": "0" * 64})
