"""Embedding methods: each maps the reference and the query into one space.

One module per method. A module defines ``REQUIRES`` (the kind of values it
needs, e.g. ``("counts",)``) and ``embed(reference, query, genes, *, seed,
**params) -> (reference_embedding, query_embedding)``. Registering a method is
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
