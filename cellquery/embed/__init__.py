"""Embedding methods: each maps the reference and the query into one space.

One module per method. A module defines ``REQUIRES`` (the kind of values it
needs, e.g. ``("counts",)``) and ``embed(reference, query, genes, *, seed,
**params) -> (reference_embedding, query_embedding)``. Registering a method is
one line in :data:`EMBEDDINGS`.
"""

from __future__ import annotations

from types import ModuleType

from cellquery.embed import pca, pca_subsample, pearson_pca, scvi
from cellquery.errors import InputError

EMBEDDINGS: dict[str, ModuleType] = {
    "pca": pca,
    "pca_subsample": pca_subsample,
    "pearson_pca": pearson_pca,
    "scvi": scvi,
}


def get_embedding(name: str) -> ModuleType:
    """The module implementing embedding ``name``."""
    try:
        return EMBEDDINGS[name]
    except KeyError:
        raise InputError(f"config: methods: unknown embedding {name!r} (known: {', '.join(EMBEDDINGS)})") from None


def skip_reason(name: str, values: str) -> str | None:
    """Why embedding ``name`` cannot run on data whose values are ``values``, or None."""
    requires = get_embedding(name).REQUIRES
    if "counts" in requires and values != "counts":
        return f"needs raw counts but the group's values are {values}"
    return None


def embed_group(reference, query, genes, *, embedding: str, params: dict, seed: int):
    """Run embedding ``embedding`` and return (reference, query) embedding AnnDatas.

    Each carries the cells' obs and ``obsm["X_emb"]``; ``uns["embedding"]``
    records the method and parameters.
    """
    from cellquery.io import embedding_adata

    module = get_embedding(embedding)
    reason = skip_reason(embedding, reference.uns.get("values", "counts"))
    if reason:
        raise InputError(f"embedding {embedding}: {reason}")
    ref_emb, qry_emb = module.embed(reference, query, genes, seed=seed, **params)
    uns = {"embedding": {"method": embedding, "seed": seed, **params}}
    return embedding_adata(reference.obs, ref_emb, uns), embedding_adata(query.obs, qry_emb, uns)
