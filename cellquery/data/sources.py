"""Load one dataset as declared in the config: simulated, bundled, local or remote.

A dataset entry in the config has a ``source`` and declares what its values
are (``values: counts`` or ``values: log-normalised``)::

    source: simulate                    # cellquery.data.simulate.simulate_dataset(**simulate)
    source: simulate_spatial            # cellquery.data.simulate_spatial: sections (obsm spatial) or,
                                        # with simulate_spatial: {dissociated: true}, the dissociated reference
    source: scanpy:pbmc68k_reduced      # shipped inside scanpy's wheel, offline
    source: data/my_atlas.h5ad          # local file (optional sha256)
    source: https://host/atlas.h5ad     # remote file, sha256 required and verified
                                        # (or sha256: first-use: recorded in config/checksums.lock)

Optional, for any source: ``split`` (a label-stratified two-way split, to
take a reference and a query from one dataset) and ``exclude`` (drop cells
whose obs value is listed: the way to hold a cell type out of a reference so
that it becomes a negative type of the query). Both are applied per seed by
:func:`select_cells` (rule preprocess): seed s of a group draws its own split
(random stream ``[split.seed, s, SPLIT_STREAM]``), so seeds are independent
experiments, while the two parts of one split stay complementary for every
seed. The loaded file ``results/data/{dataset}.h5ad`` holds the whole source.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import urllib.request
from pathlib import Path
from typing import Mapping
from urllib.parse import unquote, urlparse

import anndata as ad
import numpy as np

from cellquery.data.checksums import DEFAULT_LOCK, FIRST_USE, fetch_first_use
from cellquery.errors import InputError
from cellquery.io import atomic_path, read_h5ad

VALUE_KINDS = ("counts", "log-normalised")
# Random stream of a split within a seed (cellquery.resample draws streams 0 and 1 from [seed, stream]).
SPLIT_STREAM = 2
BUILTIN_SOURCES = ("simulate", "simulate_spatial", "scanpy:pbmc68k_reduced")
URL_SCHEMES = ("https://", "file://")


def sha256sum(path: str | os.PathLike) -> str:
    """Hex sha256 of a file (:func:`hashlib.file_digest` reads it in blocks)."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def download(url: str, dest: str | os.PathLike) -> None:
    """Download ``url`` (https:// or file://) to ``dest``, unverified (callers check the sha256)."""
    if not url.startswith(URL_SCHEMES):
        raise InputError(f"{url}: only https:// and file:// URLs are fetched; use https")
    if url.startswith("file://") and not Path(unquote(urlparse(url).path)).exists():
        raise InputError(f"{url}: file not found; check the path of the file:// URL")
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out)
    except Exception as err:
        raise InputError(f"{url}: download failed ({type(err).__name__}: {err})") from err


def fetch_url(url: str, sha256: str, dest: str | os.PathLike) -> Path:
    """Download ``url`` to ``dest`` and verify its sha256; a mismatch is an error.

    The file is downloaded to a temporary name and only renamed into place once
    the checksum matches, so a failed or corrupt download leaves nothing behind.
    An existing ``dest`` with the right checksum is reused.
    """
    if not url.startswith(URL_SCHEMES):
        raise InputError(f"{url}: only https:// and file:// URLs are fetched; use https")
    dest = Path(dest)
    if dest.exists() and sha256sum(dest) == sha256.lower():
        return dest
    if url.startswith("file://") and not Path(unquote(urlparse(url).path)).exists():
        raise InputError(f"{url}: file not found; check the path of the file:// URL")
    with atomic_path(dest) as tmp:
        download(url, tmp)
        got = sha256sum(tmp)
        if got != sha256.lower():
            raise InputError(
                f"{url}: sha256 mismatch (expected {sha256.lower()}, got {got}); "
                "check the sha256 in the config or the file at the URL"
            )
    return dest


def is_url(source: str) -> bool:
    """Whether a dataset source is a URL (https://, file://; http:// is refused by the config check)."""
    return "://" in str(source)


def local_source(spec: dict) -> Path | None:
    """The user's own file of a dataset with a local .h5ad source, else None (built-in sources, URLs)."""
    source = str(spec["source"])
    if source in BUILTIN_SOURCES or is_url(source):
        return None
    return Path(source)


def describe_source(name: str, spec: dict) -> str:
    """How error messages name a dataset: the user's file or URL, else the dataset and its source."""
    source = str(spec["source"])
    if source in BUILTIN_SOURCES:
        return f"dataset {name} (source {source})"
    return f"{source} (dataset {name})"


def source_file(
    name: str, spec: dict, cache_dir: str | os.PathLike = "resources", lock: str | os.PathLike = DEFAULT_LOCK
) -> Path | None:
    """The h5ad file a dataset is read from: the local file, or the verified download of its URL (None: built in).

    ``sha256: first-use`` on a URL records the first download's digest in
    ``lock`` and verifies later downloads against it (:mod:`cellquery.data.checksums`).
    """
    source = str(spec["source"])
    if source in BUILTIN_SOURCES:
        return None
    if is_url(source):
        if "sha256" not in spec:
            raise InputError(f"dataset {name}: a URL source needs a sha256 (config: datasets.{name}.sha256)")
        if str(spec["sha256"]) == FIRST_USE:  # recorded in / verified against the lock file
            return fetch_first_use(name, source, Path(cache_dir) / f"{name}.h5ad", lock)
        return fetch_url(source, spec["sha256"], Path(cache_dir) / f"{name}.h5ad")
    path = Path(source)
    if path.suffix != ".h5ad":
        raise InputError(
            f"dataset {name}: source {source!r} is not simulate, simulate_spatial, scanpy:pbmc68k_reduced, an .h5ad path or an https:// URL"
        )
    if not path.exists():
        raise InputError(f"{path}: file not found (config: datasets.{name}.source); check the path")
    if "sha256" in spec and sha256sum(path) != str(spec["sha256"]).lower():
        raise InputError(
            f"{path}: sha256 mismatch for dataset {name} (config: datasets.{name}.sha256); "
            "update the checksum if the file was changed on purpose"
        )
    return path


def declared_values(name: str, spec: Mapping) -> str:
    """The dataset's kind of values (config ``values``; "embedding" for an embedding-only dataset), checked."""
    if (spec.get("embedding") or {}).get("obsm_key"):  # embedding-only (cellquery.given): obs and the embedding
        return "embedding"
    values = spec.get("values")
    if values not in VALUE_KINDS:
        raise InputError(f"dataset {name}: values must be one of {VALUE_KINDS}, got {values!r} (config: datasets.{name}.values)")
    return values


def simulated_cells(spec: Mapping) -> int:
    """Cells of a ``source: simulate`` dataset as declared (0 for any other source or an unreadable count)."""
    if str(spec.get("source")) != "simulate":
        return 0
    try:
        return int((spec.get("simulate") or {}).get("n_cells", 0))
    except (TypeError, ValueError):  # simulate_dataset names the field
        return 0


def load_dataset(name: str, spec: dict, cache_dir: str | os.PathLike = "resources") -> ad.AnnData:
    """Load the whole dataset ``name`` described by its config entry ``spec`` (no split, no exclude).

    Returns an AnnData with ``obs["dataset"] = name``, obs names prefixed with
    the dataset name (unique across datasets) and ``uns["values"]`` set to the
    declared kind of values. Its contents are checked by
    :func:`cellquery.validate.load_checked_dataset`; ``split`` and ``exclude``
    are applied per seed by :func:`select_cells`.
    """
    source = str(spec["source"])
    values = declared_values(name, spec)
    embedding = (spec.get("embedding") or {}).get("obsm_key")
    if source == "simulate":
        from cellquery.data.simulate import simulate_dataset

        adata = simulate_dataset(**spec.get("simulate", {}))
    elif source == "simulate_spatial":
        from cellquery.data.simulate_spatial import simulate_dissociated_reference, simulate_sections

        kwargs = dict(spec.get("simulate_spatial", {}))
        dissociated = kwargs.pop("dissociated", False)
        if "cells_per_section" not in kwargs:
            raise InputError(f"dataset {name}: simulate_spatial.cells_per_section is required (config: datasets.{name}.simulate_spatial)")
        adata = (simulate_dissociated_reference if dissociated else simulate_sections)(**kwargs)
    elif source == "scanpy:pbmc68k_reduced":
        from cellquery.data.pbmc68k import load_pbmc68k_reduced

        adata = load_pbmc68k_reduced()
    else:
        adata = read_h5ad(source_file(name, spec, cache_dir))
    if embedding:
        from cellquery.given import embedding_dataset

        adata = embedding_dataset(adata, embedding)
    adata.obs_names = [f"{name}:{o}" for o in adata.obs_names]
    adata.obs["dataset"] = name
    adata.uns["values"] = values
    return adata


def split_rng(split_seed: int, seed: int) -> np.random.Generator:
    """The random stream of a split in seed ``seed`` of a group: ``[split.seed, seed, SPLIT_STREAM]``."""
    return np.random.default_rng([int(split_seed), int(seed), SPLIT_STREAM])


def split_mask(labels, *, fraction: float, part: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of one part of a label-stratified two-way split.

    Within every label (in sorted order) the cells are permuted with ``rng``;
    the first ``round(fraction * n)`` go to part 1, the rest to part 2. The
    same ``rng`` state gives both parts of one split, so they are complementary.
    """
    if part not in (1, 2):
        raise InputError(f"split.part must be 1 or 2, got {part!r}")
    if not 0 < fraction < 1:
        raise InputError(f"split.fraction must be in (0, 1), got {fraction!r}")
    labels = np.asarray(labels).astype(str)
    in_first = np.zeros(len(labels), dtype=bool)
    for label in sorted(set(labels)):
        rows = np.flatnonzero(labels == label)
        rows = rows[rng.permutation(len(rows))]
        in_first[rows[: int(round(fraction * len(rows)))]] = True
    return in_first if part == 1 else ~in_first


def selected_rows(obs, spec: dict, *, seed: int, where: str = "dataset") -> np.ndarray:
    """Boolean mask of the cells of a dataset that seed ``seed`` uses: its ``split`` part, minus ``exclude``.

    ``obs`` is the dataset's whole obs table; ``where`` names the dataset in errors.
    """
    keep = np.ones(len(obs), dtype=bool)
    split = spec.get("split")
    if split:
        key = split["label_key"]
        if key not in obs:
            raise InputError(f"{where}: split.label_key: obs column {key!r} is missing")
        keep = split_mask(obs[key].astype(str).to_numpy(), fraction=split["fraction"], part=split["part"],
                          rng=split_rng(split["seed"], seed))
    exclude = spec.get("exclude")
    if exclude:
        key, drop = exclude["obs_key"], [str(v) for v in exclude["values"]]
        if key not in obs:
            raise InputError(f"{where}: exclude.obs_key {key!r} is not an obs column")
        values = obs[key].astype(str)
        unknown = sorted(set(drop) - set(values))
        if unknown:
            raise InputError(f"{where}: exclude.values not found in obs[{key!r}]: {unknown}")
        keep &= ~values.isin(drop).to_numpy()
    return keep


def split_cells(adata: ad.AnnData, *, label_key: str, fraction: float, part: int, seed: int, run_seed: int) -> ad.AnnData:
    """Part ``part`` of the label-stratified split with ``seed`` as drawn in seed ``run_seed`` of a group."""
    return select_cells(adata, {"split": dict(label_key=label_key, fraction=fraction, part=part, seed=seed)}, seed=run_seed)


def select_cells(adata: ad.AnnData, spec: dict, *, seed: int, where: str = "dataset") -> ad.AnnData:
    """The cells of a loaded dataset that seed ``seed`` uses (:func:`selected_rows`); unchanged without split/exclude."""
    keep = selected_rows(adata.obs, spec, seed=seed, where=where)
    return adata if keep.all() else adata[keep].copy()
