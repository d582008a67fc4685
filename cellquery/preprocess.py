"""Preprocess one dataset group: combine datasets, check genes, QC, normalise.

scanpy does the work (``filter_cells``, ``normalize_total``, ``log1p``); this
module decides what goes in and checks that reference and query agree. The
group's data were checked before (:mod:`cellquery.validate`, rule validate);
the checks here guard direct library use.
"""

from __future__ import annotations

from typing import Sequence

import anndata as ad
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from cellquery.errors import InputError
from cellquery.io import require_obs
from cellquery.validate import MIN_SHARED_GENES  # one default for the check (rule validate) and this step


def as_annotation(column: pd.Series) -> pd.Categorical:
    """A label, batch or ontology column as string categories (integer and categorical labels are accepted)."""
    return pd.Categorical(column.astype(str).to_numpy())


def combine(
    datasets: Sequence[ad.AnnData],
    sources: Sequence[str],
    keys: Sequence[str | None],
    annotation_keys: Sequence[str | None] = (),
) -> ad.AnnData:
    """Concatenate datasets on their shared genes after checking obs ``keys``.

    The ``annotation_keys`` columns (labels, batches, ontology ids) become
    string categories, so that labels stored as integers or categoricals of
    any kind compare equal across datasets and stages.
    """
    for adata, source in zip(datasets, sources):
        require_obs(adata, keys, source)
    combined = ad.concat(list(datasets), join="inner", merge="same")
    for key in dict.fromkeys(annotation_keys):
        if key is not None:
            combined.obs[key] = as_annotation(combined.obs[key])
    combined.uns["values"] = datasets[0].uns["values"]
    return combined


def prepare_group(
    reference: Sequence[ad.AnnData],
    query: Sequence[ad.AnnData],
    *,
    reference_sources: Sequence[str],
    query_sources: Sequence[str],
    label_key: str,
    batch_keys: Sequence[str] = (),
    ontology_key: str | None = None,
    continuous_keys: Sequence[str] = (),
    min_genes: int = 20,
    target_sum: float = 1e4,
    min_shared_genes: int = MIN_SHARED_GENES,
) -> tuple[ad.AnnData, ad.AnnData]:
    """Combine, QC and normalise a group's reference and query datasets.

    Count data keep their raw counts in ``layers["counts"]`` and are
    normalised with ``normalize_total(target_sum)`` + ``log1p``; data that are
    declared log-normalised are used as they are. Cells with fewer than
    ``min_genes`` detected genes are removed. Reference and query are
    restricted to the genes they share; fewer than ``min_shared_genes`` shared
    genes is an error (a gene-identifier mismatch, usually). Label, batch and
    ontology columns become string categories (:func:`combine`).
    """
    sources = list(reference_sources) + list(query_sources)
    kinds = {a.uns.get("values") for a in list(reference) + list(query)}
    if len(kinds) != 1:
        raise InputError(f"{', '.join(sources)}: datasets of one group declare different values {sorted(map(str, kinds))}")
    values = kinds.pop()

    keys = [label_key, *batch_keys, ontology_key, *continuous_keys]
    annotations = [label_key, *batch_keys, ontology_key]
    ref = combine(reference, reference_sources, keys, annotations)
    qry = combine(query, query_sources, keys, annotations)
    shared = ref.var_names.intersection(qry.var_names, sort=False)
    if len(shared) < min_shared_genes:
        raise InputError(
            f"{', '.join(sources)}: var_names: reference and query share only {len(shared)} genes "
            f"(reference {ref.n_vars}, query {qry.n_vars}); check gene identifiers"
        )
    ref, qry = ref[:, shared].copy(), qry[:, shared].copy()

    for part in (ref, qry):
        part.X = sp.csr_matrix(part.X, dtype=np.float32) if not sp.issparse(part.X) else part.X.astype(np.float32).tocsr()
        sc.pp.filter_cells(part, min_genes=min_genes)
        if values == "counts":
            part.layers["counts"] = part.X.copy()
            sc.pp.normalize_total(part, target_sum=target_sum)
            sc.pp.log1p(part)
        part.uns["values"] = values
    for part, source in ((ref, "reference"), (qry, "query")):
        if part.n_obs == 0:
            raise InputError(f"{source} of {', '.join(sources)}: no cells left after QC (min_genes={min_genes})")
    return ref, qry
