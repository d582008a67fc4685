"""Embedding methods: each maps the reference and the query into one space.

One module per method. A module defines ``REQUIRES`` (the kind of values it
needs, e.g. ``("counts",)``) and ``embed(reference, query, genes, *, seed,
**params) -> (reference_embedding, query_embedding)``; a module that can embed
files written by the chunked preprocess without reading them whole also defines
``embed_backed(reference_path, query_path, genes, *, seed, **params)``
(:func:`embed_group_backed`). Registering a method is
one line in :data:`EMBEDDINGS` (imported on first use).
"""

from __future__ import annotations

from cellquery.errors import InputError
from cellquery.registry import Registry, skip_reason

EMBEDDINGS = Registry(
    "embedding",
    "methods.<name>.embedding",
    {
        "pca": "cellquery.embed.pca",
        "pca_subsample": "cellquery.embed.pca_subsample",
        "pearson_pca": "cellquery.embed.pearson_pca",
        "scvi": "cellquery.embed.scvi",
        # spatial groups only (REQUIRES "spatial"): neighbourhood-averaged expression
        "spatial_avg": "cellquery.embed.spatial_avg",
    },
)


def embed_group(reference, query, genes, *, embedding: str, params: dict, seed: int):
    """Run embedding ``embedding`` and return (reference, query) embedding AnnDatas.

    Each carries the cells' obs and ``obsm["X_emb"]``; ``uns["embedding"]``
    records the method and parameters.
    """
    from cellquery.io import embedding_adata

    module = EMBEDDINGS[embedding]
    reason = skip_reason(module, reference.uns.get("values", "counts"))
    if reason:
        raise InputError(f"embedding {embedding}: {reason}")
    ref_emb, qry_emb = module.embed(reference, query, genes, seed=seed, **params)
    uns = {"embedding": {"method": embedding, "seed": seed, **params}}
    return embedding_adata(reference.obs, ref_emb, uns), embedding_adata(query.obs, qry_emb, uns)


def embed_group_backed(reference, query, genes, *, embedding: str, params: dict, seed: int):
    """:func:`embed_group` for files written by the chunked preprocess (:func:`cellquery.backed.is_chunked`).

    ``reference``, ``query``: the files opened with :func:`cellquery.backed.read_backed`
    (closed here). Method ``pca`` goes through :func:`cellquery.backed.embed_pca_backed`,
    a module with ``embed_backed`` through it (rows read from disk, never the whole
    file); None for the other methods, which read the files whole.
    """
    from cellquery.backed import embed_pca_backed
    from cellquery.io import embedding_adata

    reference_path, query_path = reference.file.filename, query.file.filename
    try:
        if embedding == "pca":
            return embed_pca_backed(reference, query, genes, params=params, seed=seed)
        module = EMBEDDINGS[embedding]
        if not hasattr(module, "embed_backed"):
            return None
        reason = skip_reason(module, reference.uns.get("values", "counts"))
        if reason:
            raise InputError(f"embedding {embedding}: {reason}")
        chunk_cells = int(reference.uns["chunked"].get("chunk_cells", 0)) or None
        ref_emb, qry_emb = module.embed_backed(reference_path, query_path, genes, seed=seed,
                                               **{"chunk_cells": chunk_cells, **params})
        uns = {"embedding": {"method": embedding, "seed": seed, **params}}
        return embedding_adata(reference.obs, ref_emb, uns), embedding_adata(query.obs, qry_emb, uns)
    finally:
        reference.close()
        query.close()
