"""Load one dataset as declared in the config: simulated, bundled, local or remote.

A dataset entry in the config has a ``source`` and declares what its values
are (``values: counts`` or ``values: log-normalised``)::

    source: simulate                    # cellquery.data.simulate.simulate_dataset(**simulate)
    source: scanpy:pbmc68k_reduced      # shipped inside scanpy's wheel, offline
    source: data/my_atlas.h5ad          # local file (optional sha256)
    source: https://host/atlas.h5ad     # remote file, sha256 required and verified

Optional, for any source: ``split`` (a deterministic, label-stratified
two-way split, to take a reference and a query from one dataset) and
``exclude`` (drop cells whose obs value is listed: the way to hold a cell
type out of a reference so that it becomes a negative type of the query).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path

import anndata as ad
import numpy as np
import scipy.sparse as sp

from cellquery.errors import InputError
from cellquery.io import atomic_path, read_h5ad

VALUE_KINDS = ("counts", "log-normalised")


def sha256sum(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (:func:`hashlib.file_digest` reads it in blocks)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def fetch_url(url: str, sha256: str, dest: str | os.PathLike) -> Path:
    """Download ``url`` to ``dest`` and verify its sha256; a mismatch is an error.

    The file is downloaded to a temporary name and only renamed into place once
    the checksum matches, so a failed or corrupt download leaves nothing behind.
    An existing ``dest`` with the right checksum is reused.
    """
    dest = Path(dest)
    if dest.exists() and sha256sum(dest) == sha256.lower():
        return dest
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out)
        except Exception as err:
            raise InputError(f"{url}: download failed ({type(err).__name__}: {err})") from err
        got = sha256sum(tmp)
        if got != sha256.lower():
            raise InputError(f"{url}: sha256 mismatch (expected {sha256.lower()}, got {got})")
    return dest


def split_cells(adata: ad.AnnData, *, label_key: str, fraction: float, part: int, seed: int) -> ad.AnnData:
    """Deterministic two-way split, stratified by ``label_key``.

    Within every label the cells are permuted with ``seed``; the first
    ``round(fraction * n)`` go to part 1, the rest to part 2.
    """
    if part not in (1, 2):
        raise InputError(f"split.part must be 1 or 2, got {part!r}")
    if not 0 < fraction < 1:
        raise InputError(f"split.fraction must be in (0, 1), got {fraction!r}")
    if label_key not in adata.obs:
        raise InputError(f"split.label_key: obs column {label_key!r} is missing")
    rng = np.random.default_rng(seed)
    labels = adata.obs[label_key].astype(str).to_numpy()
    in_first = np.zeros(adata.n_obs, dtype=bool)
    for label in sorted(set(labels)):
        rows = np.flatnonzero(labels == label)
        rows = rows[rng.permutation(len(rows))]
        in_first[rows[: int(round(fraction * len(rows)))]] = True
    keep = in_first if part == 1 else ~in_first
    return adata[keep].copy()


def _check_values(adata: ad.AnnData, values: str, name: str) -> None:
    """Check that the matrix agrees with the declared kind of values."""
    if values not in VALUE_KINDS:
        raise InputError(f"dataset {name}: values must be one of {VALUE_KINDS}, got {values!r}")
    x = adata.X
    sample = x[: min(adata.n_obs, 2000)]
    data = sample.data if sp.issparse(sample) else np.asarray(sample).ravel()
    if data.size and not np.isfinite(data).all():
        raise InputError(f"dataset {name}: X has non-finite values (NaN or inf)")
    if data.size and data.min() < 0:
        raise InputError(f"dataset {name}: X has negative values; declare values: counts or log-normalised data")
    if values == "counts" and data.size and not np.allclose(data, np.round(data)):
        raise InputError(f"dataset {name}: declared values: counts, but X holds non-integer values")


def load_dataset(name: str, spec: dict, cache_dir: str | os.PathLike = "resources") -> ad.AnnData:
    """Load the dataset ``name`` described by its config entry ``spec``.

    Returns an AnnData with ``obs["dataset"] = name``, obs names prefixed with
    the dataset name (unique across datasets) and ``uns["values"]`` set to the
    declared kind of values.
    """
    source = str(spec["source"])
    if source == "simulate":
        from cellquery.data.simulate import simulate_dataset

        adata = simulate_dataset(**spec.get("simulate", {}))
    elif source == "scanpy:pbmc68k_reduced":
        from cellquery.data.pbmc68k import load_pbmc68k_reduced

        adata = load_pbmc68k_reduced()
    elif source.startswith("https://") or source.startswith("http://"):
        if "sha256" not in spec:
            raise InputError(f"dataset {name}: a URL source needs a sha256")
        local = Path(cache_dir) / f"{name}.h5ad"
        adata = read_h5ad(fetch_url(source, spec["sha256"], local))
    else:
        path = Path(source)
        if path.suffix != ".h5ad":
            raise InputError(f"dataset {name}: source {source!r} is not simulate, scanpy:pbmc68k_reduced, an .h5ad path or a URL")
        if "sha256" in spec and path.exists() and sha256sum(path) != str(spec["sha256"]).lower():
            raise InputError(f"{path}: sha256 mismatch for dataset {name}")
        adata = read_h5ad(path)

    if "split" in spec:
        adata = split_cells(adata, **spec["split"])
    if "exclude" in spec:
        key, drop = spec["exclude"]["obs_key"], [str(v) for v in spec["exclude"]["values"]]
        if key not in adata.obs:
            raise InputError(f"dataset {name}: exclude.obs_key {key!r} is not an obs column")
        unknown = sorted(set(drop) - set(adata.obs[key].astype(str)))
        if unknown:
            raise InputError(f"dataset {name}: exclude.values not found in obs[{key!r}]: {unknown}")
        adata = adata[~adata.obs[key].astype(str).isin(drop).to_numpy()].copy()

    values = spec.get("values")
    _check_values(adata, values, name)
    adata.obs_names = [f"{name}:{o}" for o in adata.obs_names]
    adata.obs["dataset"] = name
    adata.uns["values"] = values
    return adata
