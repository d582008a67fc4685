"""``sha256: first-use``: the first download is recorded in the lock file, later ones verified against it."""

import hashlib
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cellquery.config import check_source
from cellquery.data.checksums import read_lock, record_checksum
from cellquery.data.sources import load_dataset, source_file
from cellquery.errors import InputError


def h5ad(path: Path, seed: int) -> Path:
    rng = np.random.default_rng(seed)
    adata = ad.AnnData(rng.poisson(1.0, (5, 4)).astype(np.float32),
                       obs=pd.DataFrame({"cell_type": list("AABBA")}, index=[f"c{i}" for i in range(5)]))
    adata.write_h5ad(path)
    return path


def test_first_use_records_then_verifies_then_refuses_a_changed_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # the default lock, config/checksums.lock, is relative to the working directory
    src = h5ad(tmp_path / "remote.h5ad", 0)
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    spec = {"source": src.as_uri(), "values": "counts", "sha256": "first-use"}
    lock, cache = Path("config/checksums.lock"), tmp_path / "cache"

    # record: the first download writes the file's digest, computed here independently
    path = source_file("remote", spec, cache, lock)
    assert path.read_bytes() == src.read_bytes()
    assert read_lock(lock) == {"remote": (src.as_uri(), digest)}
    assert lock.read_text().splitlines()[1:] == ["dataset\turl\tsha256", f"remote\t{src.as_uri()}\t{digest}"]

    # verify: a fresh cache downloads again and passes; the lock is unchanged
    before = lock.read_text()
    path.unlink()
    assert load_dataset("remote", spec, cache).n_obs == 5
    assert lock.read_text() == before

    # mismatch: the file at the URL changed; one line naming the dataset, nothing cached, lock unchanged
    h5ad(src, 1)
    (cache / "remote.h5ad").unlink()
    with pytest.raises(InputError) as err:
        source_file("remote", spec, cache, lock)
    message = str(err.value)
    assert message.startswith(f"dataset remote: sha256 mismatch: {src.as_uri()} now has "
                              f"{hashlib.sha256(src.read_bytes()).hexdigest()}, {lock} recorded {digest}")
    assert "\n" not in message
    assert not (cache / "remote.h5ad").exists() and not list(cache.glob(".*"))
    assert lock.read_text() == before

    # a cached download that no longer matches its record is downloaded again and checked (still refused)
    (cache / "remote.h5ad").write_bytes(b"stale")
    with pytest.raises(InputError, match="^dataset remote: sha256 mismatch"):
        source_file("remote", spec, cache, lock)

    # the config names another URL than the one recorded
    other = h5ad(tmp_path / "other.h5ad", 2)
    with pytest.raises(InputError, match=r"^dataset remote: .* records the sha256 of .*remote.h5ad, but the config now names"):
        source_file("remote", {**spec, "source": other.as_uri()}, cache, lock)


def test_records_of_several_datasets_are_kept(tmp_path):
    lock = tmp_path / "checksums.lock"
    record_checksum(lock, "b", "file:///b.h5ad", "B" * 64)
    record_checksum(lock, "a", "file:///a.h5ad", "a" * 64)
    record_checksum(lock, "b", "file:///b2.h5ad", "c" * 64)
    assert read_lock(lock) == {"a": ("file:///a.h5ad", "a" * 64), "b": ("file:///b2.h5ad", "c" * 64)}
    lock.write_text("a\tonly-two-fields\n")
    with pytest.raises(InputError, match="line 1 is not"):
        read_lock(lock)


def test_config_check_refuses_a_url_without_sha256_or_first_use(tmp_path):
    with pytest.raises(InputError, match=r"^config: datasets.d.sha256: required for a URL source .*or first-use"):
        check_source("d", {"source": "https://example.org/x.h5ad", "values": "counts"})
    check_source("d", {"source": "https://example.org/x.h5ad", "values": "counts", "sha256": "first-use"})
    local = h5ad(tmp_path / "x.h5ad", 0)
    with pytest.raises(InputError, match="first-use is for URL sources"):
        check_source("d", {"source": str(local), "values": "counts", "sha256": "first-use"})


def _record_many(args):
    lock, name = args
    for i in range(20):
        record_checksum(lock, name, f"file:///{name}.h5ad", f"{i:064x}")


def test_loading_jobs_record_at_once_without_losing_a_record(tmp_path):
    """Four processes (loading jobs of four datasets) rewrite the lock 20 times each, at the same time."""
    from concurrent.futures import ProcessPoolExecutor

    lock = tmp_path / "checksums.lock"
    names = ["baron", "muraro", "segerstolpe", "xin"]
    with ProcessPoolExecutor(4) as pool:
        list(pool.map(_record_many, [(lock, n) for n in names]))
    assert read_lock(lock) == {n: (f"file:///{n}.h5ad", f"{19:064x}") for n in names}
