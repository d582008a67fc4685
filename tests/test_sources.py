"""Dataset sources: local h5ad, URLs with checksum, split (redrawn per seed) and exclude."""

import hashlib

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp

from cellquery.data.sources import fetch_url, load_dataset, select_cells, split_cells
from cellquery.errors import InputError


def small_counts(n=60, genes=30, seed=0):
    rng = np.random.default_rng(seed)
    x = sp.csr_matrix(rng.poisson(1.0, size=(n, genes)).astype(np.float32))
    obs = pd.DataFrame({"cell_type": np.repeat(["A", "B", "C"], n // 3)}, index=[f"c{i}" for i in range(n)])
    return ad.AnnData(X=x, obs=obs, var=pd.DataFrame(index=[f"g{j}" for j in range(genes)]))


def names(adata):
    return [o.split(":", 1)[1] for o in adata.obs_names]


def test_load_keeps_the_whole_source_and_prefixes_names(tmp_path):
    path = tmp_path / "d.h5ad"
    small_counts().write_h5ad(path)
    spec = {"source": str(path), "values": "counts", "split": {"label_key": "cell_type", "fraction": 0.5, "part": 1, "seed": 3}}
    loaded = load_dataset("ref", spec)
    assert loaded.n_obs == 60 and names(loaded) == [f"c{i}" for i in range(60)]
    assert (loaded.obs["dataset"] == "ref").all() and loaded.uns["values"] == "counts"


def test_split_is_redrawn_per_seed_and_its_parts_stay_complementary(tmp_path):
    path = tmp_path / "d.h5ad"
    small_counts().write_h5ad(path)
    split = {"label_key": "cell_type", "fraction": 0.3, "part": 1, "seed": 3}
    first_spec = {"source": str(path), "values": "counts", "split": split}
    second_spec = {**first_spec, "split": {**split, "part": 2}}
    first, second = load_dataset("ref", first_spec), load_dataset("qry", second_spec)
    drawn = {}
    for seed in (0, 1):
        a, b = select_cells(first, first_spec, seed=seed), select_cells(second, second_spec, seed=seed)
        # every type: round(0.3 * 20) = 6 cells in part 1, the other 14 in part 2
        assert a.obs["cell_type"].value_counts().to_dict() == {"A": 6, "B": 6, "C": 6}
        assert b.obs["cell_type"].value_counts().to_dict() == {"A": 14, "B": 14, "C": 14}
        assert not set(names(a)) & set(names(b)) and len(set(names(a)) | set(names(b))) == 60
        again = select_cells(first, first_spec, seed=seed)
        assert names(again) == names(a)
        drawn[seed] = set(names(a))
    assert drawn[0] != drawn[1]
    # the part of seed s is the hand-drawn one: within each label (sorted), a permutation of the stream [3, s, 2]
    rng = np.random.default_rng([3, 1, 2])
    expected = set()
    for label in ("A", "B", "C"):
        rows = np.flatnonzero(first.obs["cell_type"].to_numpy() == label)
        expected |= {f"c{i}" for i in rows[rng.permutation(len(rows))][:6]}
    assert drawn[1] == expected


def test_exclude_is_applied_after_the_split_of_its_own_dataset(tmp_path):
    path = tmp_path / "d.h5ad"
    small_counts().write_h5ad(path)
    split = {"label_key": "cell_type", "fraction": 0.5, "part": 1, "seed": 0}
    plain = {"source": str(path), "values": "counts", "split": split}
    held_out = {**plain, "exclude": {"obs_key": "cell_type", "values": ["B"]}}
    other = {**plain, "split": {**split, "part": 2}}
    data = load_dataset("ref", plain)
    for seed in (0, 5):
        part = select_cells(data, plain, seed=seed)
        kept = select_cells(data, held_out, seed=seed)
        assert names(kept) == [n for n, t in zip(names(part), part.obs["cell_type"]) if t != "B"]
        assert set(kept.obs["cell_type"]) == {"A", "C"} and kept.n_obs == 20
        # the query part still holds the B cells: negative types of the query
        query = select_cells(data, other, seed=seed)
        assert query.obs["cell_type"].value_counts().to_dict() == {"A": 10, "B": 10, "C": 10}
        assert not set(names(query)) & set(names(part))


def test_split_is_deterministic():
    a = split_cells(small_counts(), label_key="cell_type", fraction=0.3, part=1, seed=7, run_seed=0)
    b = split_cells(small_counts(), label_key="cell_type", fraction=0.3, part=1, seed=7, run_seed=0)
    c = split_cells(small_counts(), label_key="cell_type", fraction=0.3, part=1, seed=8, run_seed=0)
    d = split_cells(small_counts(), label_key="cell_type", fraction=0.3, part=1, seed=7, run_seed=1)
    assert list(a.obs_names) == list(b.obs_names) != list(c.obs_names)
    assert list(a.obs_names) != list(d.obs_names)


def test_corrupt_file_names_the_file(tmp_path):
    path = tmp_path / "broken.h5ad"
    path.write_bytes(b"not an hdf5 file")
    with pytest.raises(InputError, match="broken.h5ad: not a readable h5ad file"):
        load_dataset("d", {"source": str(path), "values": "counts"})


def test_unknown_exclude_value(tmp_path):
    path = tmp_path / "d.h5ad"
    small_counts().write_h5ad(path)
    spec = {"source": str(path), "values": "counts", "exclude": {"obs_key": "cell_type", "values": ["Z"]}}
    with pytest.raises(InputError, match="exclude.values not found"):
        select_cells(load_dataset("d", spec), spec, seed=0)


def test_fetch_url_verifies_checksum_and_leaves_nothing_on_mismatch(tmp_path):
    src = tmp_path / "remote.bin"
    src.write_bytes(b"cellquery" * 100)
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    dest = tmp_path / "cache" / "file.bin"
    with pytest.raises(InputError, match="sha256 mismatch"):
        fetch_url(src.as_uri(), "0" * 64, dest)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert fetch_url(src.as_uri(), good, dest).read_bytes() == src.read_bytes()


def test_file_url_with_a_wrong_checksum_says_so(tmp_path):
    src = tmp_path / "d.h5ad"
    small_counts().write_h5ad(src)
    spec = {"source": src.as_uri(), "values": "counts", "sha256": "0" * 64}
    with pytest.raises(InputError, match=r"^file://.*d.h5ad: sha256 mismatch \(expected 0+, got [0-9a-f]{64}\); check the sha256"):
        load_dataset("d", spec, cache_dir=tmp_path / "cache")
    assert not (tmp_path / "cache" / "d.h5ad").exists()
    with pytest.raises(InputError, match="file not found; check the path of the file:// URL"):
        load_dataset("d", {**spec, "source": (tmp_path / "missing.h5ad").as_uri()}, cache_dir=tmp_path / "cache")
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    assert load_dataset("d", {**spec, "sha256": good}, cache_dir=tmp_path / "cache").n_obs == 60


def test_http_urls_are_refused(tmp_path):
    with pytest.raises(InputError, match="only https:// and file:// URLs"):
        fetch_url("http://example.org/x.h5ad", "0" * 64, tmp_path / "x.h5ad")


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
