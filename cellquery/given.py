"""Embedding-only datasets: groups whose cells come with a precomputed embedding and no usable expression.

A dataset declares ``embedding: {obsm_key: X_scvi}`` (e.g. the scVI embeddings
that CELLxGENE Census ships); its h5ad needs obs and ``obsm[obsm_key]`` and no
usable ``X``. Every dataset of a group must name the same key. Such a group
skips preprocess, HVG selection and embedding: method ``given-<obsm_key>``
(the spelling of ``given:<obsm_key>`` that is safe in a file path and a
Snakemake wildcard) takes the stored embedding as it is, and the project's
index -> query -> transfer -> metrics stages run on it as on any embedding.
Methods that need expression (every configured embedding method and peer
tool) are skipped on the group, with the reason in the summary.

Seed s of such a group draws the same cells as for an expression group: each
dataset's ``split`` and ``exclude``, then the group's ``resample`` (there is no
QC: an embedding has no genes to count).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anndata as ad
import numpy as np
import pandas as pd

from cellquery.errors import InputError

# Method name of a given embedding: "given-" + obsm key (":" is not allowed in a wildcard).
GIVEN_PREFIX = "given-"
# Rows of an embedding checked at a time (backed files are read in chunks).
CHUNK_ROWS = 100_000


def given_method(key: str) -> str:
    """The method name of the embedding stored in ``obsm[key]``."""
    return f"{GIVEN_PREFIX}{key}"


def is_given(method: str) -> bool:
    """Whether ``method`` is a given embedding (not a configured method)."""
    return str(method).startswith(GIVEN_PREFIX)


def dataset_embedding_key(spec: Mapping) -> str | None:
    """The obsm key of an embedding-only dataset, else None."""
    embedding = spec.get("embedding")
    return None if not embedding else str(embedding["obsm_key"])


def group_embedding_key(config: Mapping, group: str) -> str | None:
    """The obsm key shared by every dataset of an embedding-only group; None for an expression group.

    A group mixing embedding-only and expression datasets, or naming two keys,
    is an :class:`InputError` that names the dataset and the field.
    """
    spec = config["groups"][group]
    names = list(spec["reference"]) + list(spec["query"])
    keys = {name: dataset_embedding_key(config["datasets"][name]) for name in names}
    first = names[0]
    for name in names[1:]:
        if keys[name] != keys[first]:
            given = f"embedding.obsm_key {keys[name]!r}" if keys[name] else "no embedding"
            other = f"embedding.obsm_key {keys[first]!r}" if keys[first] else "no embedding"
            raise InputError(
                f"config: datasets.{name}.embedding.obsm_key: dataset {name} of group {group} has {given} but "
                f"{first} has {other}; every dataset of a group must give the same embedding key (or none)"
            )
    return keys[first]


def embedding_problems(adata: ad.AnnData, key: str, *, where: str, name: str) -> list[str]:
    """Problems of an embedding-only dataset's ``obsm[key]``: present, 2-D with columns, numeric and finite.

    Read in row chunks, so a backed file is never read whole.
    """
    field = f"datasets.{name}.embedding.obsm_key"
    if key not in adata.obsm:
        present = ", ".join(map(repr, adata.obsm.keys())) or "none"
        return [f"{where}: {field}: obsm has no {key!r} (obsm keys: {present}); name the obsm key of the embedding"]
    emb = adata.obsm[key]
    shape = getattr(emb, "shape", ())
    if len(shape) != 2 or shape[1] == 0 or shape[0] != adata.n_obs:
        return [f"{where}: {field}: obsm[{key!r}] has shape {tuple(shape)}; give a cells x dimensions array"]
    if isinstance(emb, pd.DataFrame):
        emb = emb.to_numpy()
    for start in range(0, shape[0], CHUNK_ROWS):
        block = np.asarray(emb[start : start + CHUNK_ROWS])
        if block.dtype.kind not in "biuf":
            return [f"{where}: {field}: obsm[{key!r}] holds {block.dtype} values; give numbers"]
        bad = ~np.isfinite(block)
        if bad.any():
            row, col = np.argwhere(bad)[0]
            return [
                f"{where}: {field}: obsm[{key!r}] has {int(bad.sum())} non-finite value(s) in rows {start}.. "
                f"(first: cell {str(adata.obs_names[start + row])!r}, dimension {col}); give finite values"
            ]
    return []


def embedding_dataset(adata: ad.AnnData, key: str) -> ad.AnnData:
    """A loaded embedding-only dataset: obs and ``obsm[key]`` as float32, no matrix."""
    emb = adata.obsm[key]
    emb = emb.to_numpy() if isinstance(emb, pd.DataFrame) else np.asarray(emb)
    out = ad.AnnData(obs=adata.obs.copy())
    out.obsm[key] = np.ascontiguousarray(emb, dtype=np.float32)
    return out


def given_embeddings(
    reference: Sequence[ad.AnnData],
    query: Sequence[ad.AnnData],
    *,
    key: str,
    label_key: str,
    batch_keys: Sequence[str] = (),
    ontology_key: str | None = None,
    continuous_keys: Sequence[str] = (),
    seed: int,
    reference_fraction: float = 1.0,
    query_fraction: float = 1.0,
) -> tuple[ad.AnnData, ad.AnnData]:
    """The reference and query embedding files of seed ``seed`` of an embedding-only group.

    ``reference`` and ``query`` are the datasets' cells after ``split`` and
    ``exclude`` (:func:`cellquery.data.sources.select_cells`). Each side's
    datasets are stacked (obs columns the group reads, annotations as string
    categories as in :func:`cellquery.preprocess.combine`), resampled as the
    group declares (:func:`cellquery.resample.resample_group`) and returned as
    :func:`cellquery.io.embedding_adata` (``obsm["X_emb"]``).
    """
    from cellquery.io import embedding_adata, require_obs
    from cellquery.preprocess import as_annotation
    from cellquery.resample import resample_group

    keys = [k for k in dict.fromkeys([label_key, *batch_keys, ontology_key, *continuous_keys, "dataset"]) if k]
    annotations = [k for k in dict.fromkeys([label_key, *batch_keys, ontology_key]) if k]
    sides = []
    for datasets in (reference, query):
        for adata in datasets:
            require_obs(adata, [k for k in keys if k != "dataset"], "embedding-only dataset")
        obs = pd.concat([a.obs[[k for k in keys if k in a.obs]] for a in datasets])
        for k in annotations:
            obs[k] = as_annotation(obs[k])
        emb = np.concatenate([np.asarray(a.obsm[key], dtype=np.float32) for a in datasets])
        side = ad.AnnData(obs=obs)
        side.obsm[key] = emb
        sides.append(side)
    dims = {s.obsm[key].shape[1] for s in sides}
    if len(dims) != 1:
        raise InputError(f"embedding {key}: reference and query have {sorted(dims)} dimensions; give one embedding space")
    ref, qry = resample_group(
        sides[0],
        sides[1],
        label_key=label_key,
        seed=seed,
        reference_fraction=reference_fraction,
        query_fraction=query_fraction,
    )
    uns = {"embedding": {"method": "given", "obsm_key": key, "seed": int(seed)}}
    return embedding_adata(ref.obs, ref.obsm[key], uns), embedding_adata(qry.obs, qry.obsm[key], uns)


def embedding_group_problems(
    reference,
    query,
    *,
    group: str,
    key: str,
    settings,
    seeds: Sequence[int],
    k: int,
) -> tuple[list[str], pd.DataFrame]:
    """Problems of an embedding-only group (rule validate), and the cells every seed keeps.

    Counterpart of :func:`cellquery.validate.group_problems` without genes:
    every dataset's embedding has the same number of dimensions, and for every
    seed each side keeps cells after ``split``, ``exclude`` and ``resample``,
    the reference at least ``k``. ``reference`` and ``query`` are
    :class:`cellquery.validate.LoadedDataset` lists. The table has one row per
    seed and side (``seed, side, n_cells, n_types, n_dims``).
    """
    from cellquery.data.sources import selected_rows
    from cellquery.validate import resampled_size

    prefix = f"groups.{group}"
    problems: list[str] = []
    sides = {"reference": list(reference), "query": list(query)}
    dims = {d.name: d.adata.obsm[key].shape[1] for ds in sides.values() for d in ds}
    if len(set(dims.values())) != 1:
        listed = ", ".join(f"{name} {n}" for name, n in dims.items())
        problems.append(
            f"{prefix}: the datasets' obsm[{key!r}] have different dimensions ({listed}); "
            "give every dataset of the group the same embedding space"
        )
    n_dims = max(dims.values())
    fractions = {"reference": settings.reference_fraction, "query": settings.query_fraction}
    rows = []
    for seed in seeds:
        for side, datasets in sides.items():
            labels = np.concatenate(
                [
                    d.adata.obs[settings.label_key].astype(str).to_numpy()[selected_rows(d.adata.obs, d.spec, seed=seed, where=d.where)]
                    for d in datasets
                ]
            )
            n = resampled_size(labels, fractions[side])
            rows.append(dict(seed=seed, side=side, n_cells=n, n_types=len(set(labels)), n_dims=n_dims))
            if n == 0:
                problems.append(
                    f"{prefix}: the {side} of seed {seed} has no cells left after split and exclude; "
                    "check datasets.<name>.exclude and split"
                )
            elif side == "reference" and n < k:
                problems.append(
                    f"config: k = {k} exceeds the {n} reference cells of {prefix} in seed {seed} (after split, exclude "
                    "and resample); lower k or give the group more reference cells"
                )
    return problems, pd.DataFrame(rows, columns=["seed", "side", "n_cells", "n_types", "n_dims"])
