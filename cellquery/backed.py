"""Backed, chunked preprocessing of atlas-sized groups: QC, normalisation, HVG and PCA by row chunks.

The in-memory path (:func:`cellquery.preprocess.prepare_group`,
:func:`cellquery.hvg.select_hvg`, :func:`cellquery.embed.pca.embed`) reads a
group whole. Here the datasets are opened with :func:`read_backed` (obs, var
and uns in memory; ``X`` as anndata's backed sparse dataset; layers, which
``anndata.read_h5ad(backed="r")`` would read whole, are not read), their CSR
``X`` is read ``chunk_cells`` rows at a time and no step holds the full
matrix, dense or sparse:

* :func:`prepare_group_backed`: the same cells, genes, obs and values as
  ``prepare_group`` followed by ``resample_group``. Pass 1 counts each cell's
  detected shared genes (the QC of ``scanpy.pp.filter_cells``); pass 2 runs
  scanpy's ``normalize_total`` and ``log1p`` on each chunk of kept cells
  (both are row-wise, so a chunk gives the rows of the whole) and appends it
  to the output's CSR ``X`` (and ``layers["counts"]``) with anndata's
  ``sparse_dataset(...).append``. The output is an ordinary h5ad marked with
  ``uns["chunked"]``, which tells the HVG and embedding steps to read it backed.
* :func:`select_hvg_backed`: scanpy's ``seurat`` flavour per batch, from per-gene
  mean and variance of ``expm1`` of the log values accumulated over chunks.
* :func:`pca_backed`: the reference's per-gene scaling accumulated over chunks,
  a PCA (``svd_solver="covariance_eigh"``, as the in-memory path) fitted on a
  seeded subsample of ``fit_cells`` reference cells (all when fewer), then
  every cell projected chunk by chunk.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import anndata as ad
import h5py
import numpy as np
import pandas as pd
import scipy.sparse as sp
from anndata.io import read_elem, sparse_dataset, write_elem

from cellquery.errors import InputError
from cellquery.io import atomic_path
from cellquery.resample import QUERY_STREAM, REFERENCE_STREAM, stratified_rows
from cellquery.validate import MIN_SHARED_GENES

# Groups with more cells than this (config preprocess.backed_above_cells) take the chunked path.
BACKED_ABOVE_CELLS = 200_000
# Rows read at a time (config preprocess.chunk_cells).
CHUNK_CELLS = 20_000
# Reference cells the chunked PCA is fitted on (a seeded subsample when the reference is larger).
FIT_CELLS = 100_000
# The chunked writer's HDF5 storage: lzf (fast) in chunks of 2^18 values; gzip, which the
# in-memory writer uses, costs minutes per 10^8 values.
# (anndata makes the arrays of sparse matrices resizable itself.)
DATASET_KWARGS = {"compression": "lzf", "chunks": (1 << 18,)}
# anndata appends to a stored sparse matrix only within the index width it was written with:
# a file that may hold this many values (cells x genes) or more is started with 64-bit indices
INT32_INDEX_LIMIT = np.iinfo(np.int32).max


@dataclass
class BackedData:
    """An h5ad opened for the chunked path: obs, var, uns and obsm in memory, ``X`` left on disk.

    ``anndata.read_h5ad(backed="r")`` keeps only ``X`` on disk and reads every
    layer whole (a preprocessed atlas's ``layers["counts"]`` is as large as
    ``X``); this reads only what the chunked steps use. ``X`` is anndata's
    backed sparse dataset (``anndata.io.sparse_dataset``; a dense ``X``: the HDF5
    dataset): slicing rows reads them.
    """

    file: h5py.File
    X: object
    obs: pd.DataFrame
    var: pd.DataFrame
    uns: dict = field(default_factory=dict)
    obsm: dict = field(default_factory=dict)

    @property
    def n_obs(self) -> int:
        return len(self.obs)

    @property
    def n_vars(self) -> int:
        return len(self.var)

    @property
    def var_names(self) -> pd.Index:
        return self.var.index

    @property
    def obs_names(self) -> pd.Index:
        return self.obs.index

    def close(self) -> None:
        self.file.close()


def read_backed(path: str | os.PathLike, obsm: bool = False) -> BackedData:
    """Open an h5ad for the chunked path (:class:`BackedData`); ``obsm`` also reads obsm."""
    try:
        f = h5py.File(path, "r")
    except OSError as err:
        raise InputError(f"{path}: not a readable h5ad file ({type(err).__name__}: {err})") from err
    try:
        x = f["X"]
        if isinstance(x, h5py.Group) and x.attrs.get("encoding-type") != "csr_matrix":
            raise InputError(f"{path}: X: the chunked path reads rows of a CSR or dense matrix, found {x.attrs.get('encoding-type')}")
        return BackedData(
            file=f,
            X=sparse_dataset(x) if isinstance(x, h5py.Group) else x,
            obs=read_elem(f["obs"]),
            var=read_elem(f["var"]),
            uns=read_elem(f["uns"]) if "uns" in f else {},
            obsm=read_elem(f["obsm"]) if obsm and "obsm" in f else {},
        )
    except KeyError as err:
        f.close()
        raise InputError(f"{path}: missing {err} (write it with anndata's AnnData.write_h5ad)") from err
    except InputError:
        f.close()
        raise


def count_cells(path: str | os.PathLike) -> int:
    """Number of cells of an h5ad file, read from its obs index alone."""
    try:
        with h5py.File(path, "r") as f:
            return int(f["obs"][f["obs"].attrs["_index"]].shape[0])
    except (OSError, KeyError) as err:
        raise InputError(f"{path}: obs: cannot read the cell index ({type(err).__name__}: {err})") from err


def read_rows(path, rows: np.ndarray, genes: Sequence[str] | None = None, layers: bool = True,
              chunk_rows: int = CHUNK_CELLS):
    """Rows ``rows`` (sorted) of an h5ad file with CSR ``X`` and layers, read by rows: the whole atlas is never loaded.

    ``genes``: only these columns (in this order); ``layers`` False: ``X`` alone.
    The file is read in spans of ``chunk_rows`` atlas rows: a span with few
    selected rows is read by those rows, a fuller one as a contiguous block
    (anndata reads a list of rows one by one) and subset here, so only the selected
    cells' (and genes') values are ever held. (``anndata.read_h5ad(backed="r")``
    reads every layer whole, so X and each layer are opened as anndata's backed
    sparse datasets.)
    """
    rows = np.asarray(rows, dtype=np.int64)
    with h5py.File(path, "r") as f:
        var = read_elem(f["var"])
        columns = None if genes is None else var.index.get_indexer(list(genes))
        if columns is not None:
            if (columns < 0).any():
                raise InputError(f"{path}: var_names: {int((columns < 0).sum())} of the genes asked for are missing")
            var = var.iloc[columns]

        def spans(x):  # the selected rows as CSR blocks, span by span
            for lo in range(0, len(rows), chunk_rows):
                part = rows[lo : lo + chunk_rows]
                span = int(part[-1] - part[0] + 1)
                if len(part) * 4 >= span:  # dense enough: one contiguous read
                    block = sp.csr_matrix(x[int(part[0]) : int(part[-1]) + 1])[part - part[0]]
                else:
                    block = sp.csr_matrix(x[part])
                yield block if columns is None else block[:, columns]

        def matrix(group):  # csr_matrix, as read_h5ad gives (sparse_dataset may give a csr_array, which some tools refuse)
            x = sparse_dataset(group)
            if columns is not None:  # a subset of the genes: the blocks are stacked
                blocks = list(spans(x))
                return sp.vstack(blocks, format="csr") if blocks else sp.csr_matrix((0, len(columns)), dtype=np.float32)
            # all genes: the rows' lengths are known from indptr, so the values are copied into arrays
            # allocated once (stacking blocks would hold the matrix twice: ~2 x 5 GB at 10^6 cells)
            stored = group["indptr"][:]
            indptr = np.zeros(len(rows) + 1, dtype=np.int64)
            np.cumsum(stored[rows + 1] - stored[rows], out=indptr[1:])
            data = np.empty(int(indptr[-1]), dtype=group["data"].dtype)
            indices = np.empty(int(indptr[-1]), dtype=np.int32 if x.shape[1] <= np.iinfo(np.int32).max else np.int64)
            filled = 0
            for block in spans(x):
                data[filled : filled + block.nnz] = block.data
                indices[filled : filled + block.nnz] = block.indices
                filled += block.nnz
            assert filled == len(data), (filled, len(data))
            return sp.csr_matrix((data, indices, indptr), shape=(len(rows), x.shape[1]))

        return ad.AnnData(X=matrix(f["X"]), obs=read_elem(f["obs"]).iloc[rows], var=var,
                          uns=read_elem(f["uns"]) if "uns" in f else {},
                          layers={name: matrix(f["layers"][name]) for name in f.get("layers", {})} if layers else {})


def layer_chunks(path, layer: str | None, chunk_cells: int = CHUNK_CELLS) -> Iterator[tuple[int, sp.csr_matrix]]:
    """:func:`row_chunks` of ``layers[layer]`` (``X`` when None) of an h5ad file, nothing else read."""
    with h5py.File(path, "r") as f:
        if layer is not None and layer not in f.get("layers", {}):
            raise InputError(f"{path}: layers[{layer!r}] is missing")
        group = f["X"] if layer is None else f["layers"][layer]
        x = sparse_dataset(group) if isinstance(group, h5py.Group) else group
        yield from row_chunks(x, x.shape[0], chunk_cells)


def map_chunks(path, layer: str | None, fn, n_out: int, chunk_cells: int = CHUNK_CELLS) -> np.ndarray:
    """``fn(start, block)`` (an ``(n, n_out)`` array) of every :func:`layer_chunks` block, stacked as float32."""
    out = [np.asarray(fn(start, block), dtype=np.float32) for start, block in layer_chunks(path, layer, chunk_cells)]
    return np.concatenate(out) if out else np.empty((0, n_out), dtype=np.float32)


def gene_columns(path, genes: Sequence[str], side: str) -> np.ndarray:
    """Positions of ``genes`` in a file's var_names (an error naming the file when some are missing)."""
    with h5py.File(path, "r") as f:
        var = read_elem(f["var"])
    columns = var.index.get_indexer(list(genes))
    if (columns < 0).any():
        missing = [g for g, c in zip(genes, columns) if c < 0][:3]
        raise InputError(f"{path}: var_names: {side}: highly variable genes missing, e.g. {missing}")
    return columns


def is_chunked(adata) -> bool:
    """Whether a preprocessed file was written by :func:`prepare_group_backed`."""
    return "chunked" in adata.uns


def row_chunks(x, n_rows: int, chunk_cells: int) -> Iterator[tuple[int, sp.csr_matrix]]:
    """``(start, rows start:start+chunk_cells of x as CSR)`` over all rows of a backed (or in-memory) matrix."""
    if chunk_cells < 1:
        raise InputError(f"config: preprocess.chunk_cells must be >= 1, got {chunk_cells}")
    for start in range(0, n_rows, chunk_cells):
        block = x[start : min(start + chunk_cells, n_rows)]
        yield start, (block if sp.issparse(block) else sp.csr_matrix(block)).tocsr()


def _selected_chunks(adata: BackedData, rows: np.ndarray, columns: np.ndarray, chunk_cells: int):
    """Chunks of the rows ``rows`` (boolean mask) of ``adata.X`` restricted to ``columns``, as float32 CSR."""
    for start, block in row_chunks(adata.X, adata.n_obs, chunk_cells):
        keep = rows[start : start + block.shape[0]]
        if keep.any():
            yield block[keep][:, columns].astype(np.float32)


def _obs_only(adata: BackedData, rows: np.ndarray) -> ad.AnnData:
    """The selected cells' obs and obsm (no expression) with the dataset's genes."""
    part = ad.AnnData(obs=adata.obs[rows].copy(), var=adata.var.copy(), obsm={k: np.asarray(v)[rows] for k, v in adata.obsm.items()})
    part.uns["values"] = adata.uns.get("values")
    return part


def open_output(path, var: pd.DataFrame, uns: dict, obsm_dims: dict, counts: bool, max_cells: int) -> None:
    """An h5ad with no cells yet: resizable CSR ``X`` (and ``layers["counts"]``), ``var`` and ``uns``.

    Rows are appended with ``anndata.io.sparse_dataset(...).append``; the
    matrices get 64-bit indices when ``max_cells`` x genes could pass
    :data:`INT32_INDEX_LIMIT`.
    """
    empty = sp.csr_matrix((0, len(var)), dtype=np.float32)
    if max_cells * len(var) >= INT32_INDEX_LIMIT:  # scipy keeps int32 for an empty matrix: widen after construction
        empty.indices, empty.indptr = empty.indices.astype(np.int64), empty.indptr.astype(np.int64)
    skeleton = ad.AnnData(var=var, uns=uns, obsm={k: np.zeros((0, d), dtype=np.float32) for k, d in obsm_dims.items()})
    with h5py.File(path, "w") as f:
        write_elem(f, "/", skeleton)
        write_elem(f, "X", empty, dataset_kwargs=DATASET_KWARGS)
        if counts:
            write_elem(f["layers"], "counts", empty, dataset_kwargs=DATASET_KWARGS)


def prepare_group_backed(
    reference: Sequence[tuple[BackedData, np.ndarray]],
    query: Sequence[tuple[BackedData, np.ndarray]],
    *,
    out_reference: str | os.PathLike,
    out_query: str | os.PathLike,
    reference_sources: Sequence[str],
    query_sources: Sequence[str],
    label_key: str,
    batch_keys: Sequence[str] = (),
    ontology_key: str | None = None,
    continuous_keys: Sequence[str] = (),
    min_genes: int = 20,
    target_sum: float = 1e4,
    min_shared_genes: int = MIN_SHARED_GENES,
    seed: int = 0,
    reference_fraction: float = 1.0,
    query_fraction: float = 1.0,
    uns: dict | None = None,
    chunk_cells: int = CHUNK_CELLS,
) -> tuple[int, int]:
    """Chunked ``prepare_group`` + ``resample_group``: write the reference and query h5ad files.

    ``reference`` and ``query`` are (:func:`read_backed` with obsm, boolean mask of the cells
    the seed uses) per dataset. The files hold what the in-memory path writes
    (obs with ``n_genes``, shared genes, normalised log1p ``X``, raw
    ``layers["counts"]`` for counts data, ``uns["values"]``, ``uns["log1p"]``)
    plus ``uns["chunked"]`` and ``uns`` extras. Returns the numbers of cells written.
    """
    import scanpy as sc  # here, not at module level: the embed and hvg steps (other envs) need none of it

    from cellquery.preprocess import combine

    sources = list(reference_sources) + list(query_sources)
    kinds = {a.uns.get("values") for a, _ in list(reference) + list(query)}
    if len(kinds) != 1:
        raise InputError(f"{', '.join(sources)}: datasets of one group declare different values {sorted(map(str, kinds))}")
    values = kinds.pop()
    if values == "counts" and target_sum is None:
        raise InputError(f"{', '.join(sources)}: preprocess.target_sum must be a number for chunked preprocessing")

    keys = [label_key, *batch_keys, ontology_key, *continuous_keys]
    annotations = [label_key, *batch_keys, ontology_key]
    # obs, obsm and genes exactly as the in-memory path combines them (cellquery.preprocess.combine)
    ref = combine([_obs_only(a, m) for a, m in reference], reference_sources, keys, annotations)
    qry = combine([_obs_only(a, m) for a, m in query], query_sources, keys, annotations)
    shared = ref.var_names.intersection(qry.var_names, sort=False)
    if len(shared) < min_shared_genes:
        raise InputError(
            f"{', '.join(sources)}: var_names: reference and query share only {len(shared)} genes "
            f"(reference {ref.n_vars}, query {qry.n_vars}); check gene identifiers"
        )

    written = []
    for side, parts, combined, fraction, stream, out in (
        ("reference", reference, ref, reference_fraction, REFERENCE_STREAM, out_reference),
        ("query", query, qry, query_fraction, QUERY_STREAM, out_query),
    ):
        columns = [a.var_names.get_indexer(shared) for a, _ in parts]
        # pass 1: detected genes per cell (scanpy.pp.filter_cells counts values > 0)
        n_genes = np.concatenate(
            [
                np.concatenate([np.asarray((block > 0).sum(axis=1)).ravel() for block in _selected_chunks(a, m, cols, chunk_cells)] or [np.zeros(0, int)])
                for (a, m), cols in zip(parts, columns)
            ]
        )
        passes = n_genes >= min_genes
        if not passes.any():
            raise InputError(f"{side} of {', '.join(sources)}: no cells left after QC (min_genes={min_genes})")
        obs = combined.obs.copy()
        obs["n_genes"] = n_genes
        kept = np.flatnonzero(passes)
        labels = obs[label_key].astype(str).to_numpy()[kept]
        kept = kept[stratified_rows(labels, fraction, np.random.default_rng([int(seed), stream]))]
        final = np.zeros(len(obs), dtype=bool)
        final[kept] = True

        file_uns = {"values": values, "chunked": {"chunk_cells": int(chunk_cells)}, **(uns or {})}
        if values == "counts":
            file_uns["log1p"] = {"base": None}
        obsm = {k: np.asarray(v)[final] for k, v in combined.obsm.items()}
        with atomic_path(out) as tmp:
            open_output(tmp, combined.var.loc[shared], file_uns, {k: v.shape[1] for k, v in obsm.items()}, values == "counts",
                        max_cells=int(final.sum()))
            with h5py.File(tmp, "a") as f:
                x_out = sparse_dataset(f["X"])
                counts_out = sparse_dataset(f["layers"]["counts"]) if values == "counts" else None
                offset = 0
                for (a, m), cols in zip(parts, columns):
                    rows = final[offset : offset + int(m.sum())]
                    offset += int(m.sum())
                    selected = m.copy()
                    selected[m] = rows
                    for block in _selected_chunks(a, selected, cols, chunk_cells):
                        if counts_out is not None:
                            counts_out.append(block)
                            chunk = ad.AnnData(X=block.copy())
                            sc.pp.normalize_total(chunk, target_sum=target_sum)
                            sc.pp.log1p(chunk)
                            block = chunk.X
                        x_out.append(sp.csr_matrix(block, dtype=np.float32))
                for key in ("obs", "obsm"):
                    del f[key]
                write_elem(f, "obs", obs[final])
                write_elem(f, "obsm", obsm)
        written.append(int(final.sum()))
    return written[0], written[1]


def gene_moments(x, n_rows: int, groups: np.ndarray, n_groups: int, chunk_cells: int = CHUNK_CELLS):
    """Per group: cell count, and per gene the sums of ``expm1(x)`` and of its square (float64), over row chunks.

    ``groups`` holds each row's group code in ``0..n_groups-1``. ``expm1`` undoes
    ``log1p``, as scanpy's ``seurat`` flavour does before its mean and variance.
    """
    n = np.bincount(groups, minlength=n_groups).astype(np.float64)
    total = sq = None
    for start, block in row_chunks(x, n_rows, chunk_cells):
        values = block.copy()
        np.expm1(values.data, out=values.data)  # in the stored precision, as scanpy does
        # scanpy squares in the stored precision too (then sums in float64): the same boundary genes
        squares = values.multiply(values).astype(np.float64)
        values = values.astype(np.float64)
        member = sp.csr_matrix(
            (np.ones(block.shape[0]), (groups[start : start + block.shape[0]], np.arange(block.shape[0]))),
            shape=(n_groups, block.shape[0]),
        )
        part_sum, part_sq = np.asarray((member @ values).todense()), np.asarray((member @ squares).todense())
        total, sq = (part_sum, part_sq) if total is None else (total + part_sum, sq + part_sq)
    if total is None:
        total = sq = np.zeros((n_groups, x.shape[1]))
    return n, total, sq


def seurat_dispersions(mean: np.ndarray, var: np.ndarray, n_top_genes: int, n_bins: int = 20) -> pd.DataFrame:
    """scanpy's ``seurat`` flavour (one batch) from the per-gene mean and variance (ddof=1) of ``expm1`` values.

    Written by hand: scanpy computes these moments from the matrix itself and has
    no public entry for precomputed ones. Follows
    ``scanpy.preprocessing._highly_variable_genes._highly_variable_genes_single_batch``
    (scanpy 1.11): log dispersion, ``log1p`` mean, ``n_bins`` equal-width mean bins,
    dispersions z-scored within their bin (a bin of one gene: normalised dispersion 1),
    the top ``n_top_genes`` by normalised dispersion (ties kept).
    Columns ``means``, ``dispersions``, ``dispersions_norm``, ``highly_variable``.
    """
    mean = np.array(mean, dtype=np.float64)
    mean[mean == 0] = 1e-12
    dispersion = np.asarray(var, dtype=np.float64) / mean
    dispersion[dispersion == 0] = np.nan
    df = pd.DataFrame({"means": np.log1p(mean), "dispersions": np.log(dispersion)})
    df["mean_bin"] = pd.cut(df["means"], bins=n_bins)
    stats = df.groupby("mean_bin", observed=True)["dispersions"].agg(avg="mean", dev="std")
    single = stats["dev"].isnull()
    stats.loc[single, "dev"] = stats.loc[single, "avg"]
    stats.loc[single, "avg"] = 0
    per_gene = stats.loc[df["mean_bin"]].set_index(df.index)
    df["dispersions_norm"] = (df["dispersions"] - per_gene["avg"]) / per_gene["dev"]
    norm = df["dispersions_norm"].to_numpy()
    finite = np.sort(norm[~np.isnan(norm)])[::-1]
    cutoff = finite[min(n_top_genes, len(df), finite.size) - 1] if finite.size else np.inf
    df["highly_variable"] = np.nan_to_num(norm, nan=-np.inf) >= cutoff
    return df


def batch_statistics(reference: BackedData, *, batch_key: str | None, n_top_genes: int, chunk_cells: int = CHUNK_CELLS):
    """(batch name, seurat table) per batch of a backed reference, from chunked gene moments."""
    if batch_key is not None and batch_key not in reference.obs:
        raise InputError(f"reference: obs column {batch_key!r} (batch key) is missing")
    batches = reference.obs[batch_key].astype(str).to_numpy() if batch_key else np.zeros(reference.n_obs, dtype=str)
    names, codes = np.unique(batches, return_inverse=True)
    n, total, sq = gene_moments(reference.X, reference.n_obs, codes, len(names), chunk_cells)
    tables = []
    for b, name in enumerate(names):
        mean = total[b] / n[b]
        var = sq[b] / n[b] - mean**2
        if n[b] > 1:
            var *= n[b] / (n[b] - 1)
        table = seurat_dispersions(mean, var, min(n_top_genes, reference.n_vars))
        table.index = reference.var_names
        tables.append((str(name), table))
    return tables


def select_hvg_backed(
    reference: BackedData, *, batch_key: str | None, n_top_genes: int = 1000, min_batch_fraction: float = 0.5,
    chunk_cells: int = CHUNK_CELLS,
) -> pd.DataFrame:
    """:func:`cellquery.hvg.select_hvg` on a backed reference, its gene statistics accumulated in chunks."""
    from cellquery.hvg import check_fraction, hvg_table

    check_fraction(min_batch_fraction)
    tables = batch_statistics(reference, batch_key=batch_key, n_top_genes=n_top_genes, chunk_cells=chunk_cells)
    return hvg_table(reference.var_names, [t for _, t in tables], min_batch_fraction)


def _columns(adata: BackedData, genes: Sequence[str], side: str) -> np.ndarray:
    columns = adata.var_names.get_indexer(list(genes))
    if (columns < 0).any():
        missing = [g for g, c in zip(genes, columns) if c < 0][:3]
        raise InputError(f"{side}: var_names: highly variable genes missing, e.g. {missing}")
    return columns


def fit_rows(n_obs: int, fit_cells: int | None, seed: int) -> np.ndarray:
    """Sorted rows the PCA is fitted on: ``fit_cells`` of ``n_obs`` drawn with ``seed``, or all (None, or not fewer)."""
    if fit_cells is None or fit_cells >= n_obs:
        return np.arange(n_obs)
    return np.sort(np.random.default_rng(seed).choice(n_obs, size=fit_cells, replace=False))


def pca_backed(
    reference: BackedData,
    query: BackedData,
    genes: Sequence[str],
    *,
    n_comps: int = 30,
    seed: int = 0,
    fit_cells: int | None = FIT_CELLS,
    chunk_cells: int = CHUNK_CELLS,
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`cellquery.embed.pca.embed` on backed files, chunk by chunk.

    Scaling (mean, population sd, clip +-10) uses every reference cell; the
    PCA is fitted on ``fit_cells`` reference cells drawn with ``seed`` (all
    cells when None or when the reference is smaller), then reference and
    query are projected in chunks.
    """
    from sklearn.decomposition import PCA  # here: the embed step of other methods' envs imports this module

    ref_cols, qry_cols = _columns(reference, genes, "reference"), _columns(query, genes, "query")
    total = np.zeros(len(genes))
    sq = np.zeros(len(genes))
    for _, block in row_chunks(reference.X, reference.n_obs, chunk_cells):
        block = block[:, ref_cols].astype(np.float64)
        total += np.asarray(block.sum(axis=0)).ravel()
        sq += np.asarray(block.multiply(block).sum(axis=0)).ravel()
    mean = total / reference.n_obs
    std = np.sqrt(np.maximum(sq / reference.n_obs - mean**2, 0))
    std[std == 0] = 1.0
    mean, std = mean.astype(np.float32), std.astype(np.float32)

    def scaled(block: sp.csr_matrix) -> np.ndarray:
        return np.clip((block.toarray().astype(np.float32) - mean) / std, -10, 10)

    fit = np.zeros(reference.n_obs, dtype=bool)
    fit[fit_rows(reference.n_obs, fit_cells, seed)] = True
    rows = [block[fit[start : start + block.shape[0]]][:, ref_cols] for start, block in row_chunks(reference.X, reference.n_obs, chunk_cells)]
    sample = sp.vstack(rows, format="csr")
    del rows
    n_comps = min(n_comps, len(genes) - 1, sample.shape[0] - 1)
    model = PCA(n_components=n_comps, svd_solver="covariance_eigh").fit(scaled(sample))
    del sample

    out = []
    for adata, cols in ((reference, ref_cols), (query, qry_cols)):
        emb = np.empty((adata.n_obs, n_comps), dtype=np.float32)
        for start, block in row_chunks(adata.X, adata.n_obs, chunk_cells):
            emb[start : start + block.shape[0]] = model.transform(scaled(block[:, cols]))
        out.append(emb)
    return out[0], out[1]


def embed_pca_backed(reference: BackedData, query: BackedData, genes: Sequence[str], *, params: dict, seed: int):
    """Embedding AnnDatas of method ``pca`` on chunked files, as :func:`cellquery.embed.embed_group` returns them."""
    from cellquery.io import embedding_adata

    chunk_cells = int(reference.uns["chunked"].get("chunk_cells", CHUNK_CELLS))
    ref_emb, qry_emb = pca_backed(reference, query, genes, seed=seed, chunk_cells=chunk_cells, **params)
    uns = {"embedding": {"method": "pca", "seed": seed, **params}}
    return embedding_adata(reference.obs, ref_emb, uns), embedding_adata(query.obs, qry_emb, uns)
