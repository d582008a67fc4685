"""Checks of the input data before any expensive job: one line per problem, naming the user's file and field.

Two steps, each over the whole data (never a sample), streamed in chunks:

- :func:`dataset_problems` (rule ``load_dataset``, before the dataset is
  written to ``results/data/``): the file is a readable h5ad; cell and gene
  names are unique; ``X`` holds finite values that agree with the declared
  ``values`` (counts: non-negative integers; log-normalised: non-negative,
  and small enough to be logarithms); every obs column a group that uses the
  dataset names (label, batch, ontology and continuous keys) is present
  without missing values; Cell Ontology ids are terms of the bundled
  ontology; fate vectors (continuous keys) are non-negative and sum to 1;
  ``split`` and ``exclude`` name existing columns and values and leave cells.
- :func:`group_problems` (rule ``validate``, once per group, before any
  preprocess job): reference and query share enough genes, and for every seed
  both are non-empty after ``split``, ``exclude``, QC and ``resample``, with at
  least ``k`` reference cells.

Labels may be strings, integers or categoricals (the preprocess step turns
them into strings). Each function returns a list of one-line messages (empty:
no problem); :func:`raise_problems` turns them into an
:class:`~cellquery.errors.InputError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellquery.data.sources import declared_values, describe_source, selected_rows, simulated_cells, split_mask
from cellquery.errors import InputError
from cellquery.io import read_h5ad
from cellquery.resample import label_sample_size
from cellquery.settings import GroupSettings

# Reference and query must share at least this many genes (config preprocess.min_shared_genes).
MIN_SHARED_GENES = 50
# Fate probabilities of a cell must sum to 1 within this tolerance.
FATE_TOLERANCE = 1e-3
# log1p of normalised counts stays far below this (log1p(1e6 * 1e6) ~ 27.6); larger values are not logarithms.
MAX_LOG_VALUE = 50.0
# Rows of a dense X, or stored values of a sparse X, read at a time.
CHUNK_ROWS = 10_000
CHUNK_VALUES = 1 << 24
# How many offending values a message quotes.
SHOWN = 3

TPM_HINT = (
    "TPM/FPKM are neither counts nor log-normalised: store log1p(TPM) and declare values: log-normalised "
    "(methods that need counts are then skipped)"
)


@dataclass(frozen=True)
class Usage:
    """A group that uses a dataset, with the obs keys it reads."""

    group: str
    settings: GroupSettings

    def fields(self) -> list[tuple[str, str]]:
        """(obs column, config field) pairs the group needs, in config order."""
        s = self.settings
        pairs = [(s.label_key, "label_key")]
        pairs += [(key, "batch_keys") for key in s.batch_keys]
        if s.ontology_key:
            pairs.append((s.ontology_key, "ontology_key"))
        pairs += [(key, "continuous_keys") for key in s.continuous_keys]
        return pairs


def dataset_usages(config: Mapping, dataset: str) -> list[Usage]:
    """The groups of ``config`` that use ``dataset`` (as reference or query)."""
    return [
        Usage(group, GroupSettings.from_config(spec))
        for group, spec in config["groups"].items()
        if dataset in list(spec["reference"]) + list(spec["query"])
    ]


def raise_problems(problems: Sequence[str], log=None) -> None:
    """Raise an :class:`InputError` with the first problem; every problem goes to ``log`` first, one per line."""
    if not problems:
        return
    if log is not None:
        for problem in problems:
            print(f"InputError: {problem}", file=log, flush=True)
    more = f" (and {len(problems) - 1} more problem(s) listed in the log)" if len(problems) > 1 else ""
    raise InputError(problems[0] + more)


def _quote(values: Iterable, n: int = SHOWN) -> str:
    values = list(values)
    shown = ", ".join(repr(str(v)) for v in values[:n])
    return shown + (", ..." if len(values) > n else "")


# ----------------------------------------------------------------- X, streamed
@dataclass
class ValueScan:
    """What one pass over ``X`` found: counts and the first (row, column) of each kind of bad value."""

    n_values: int = 0
    nonfinite: int = 0
    negative: int = 0
    nonintegral: int = 0
    minimum: float = np.inf
    maximum: float = -np.inf
    first_nonfinite: tuple[int, int] | None = None
    first_negative: tuple[int, int] | None = None
    first_nonintegral: tuple[int, int, float] | None = None


def _sparse_parts(X):
    """(format, data, indices, indptr) of an in-memory or backed (h5py) CSR/CSC matrix, else None."""
    if sp.issparse(X):
        fmt = X.format
        if fmt not in ("csr", "csc"):
            X = X.tocsr()
            fmt = "csr"
        return fmt, X.data, X.indices, X.indptr
    group = getattr(X, "group", None)
    fmt = getattr(X, "format", None)
    if group is not None and fmt in ("csr", "csc"):
        return fmt, group["data"], group["indices"], group["indptr"]
    return None


def _value_chunks(X) -> Iterator[tuple[np.ndarray, callable]]:
    """Stream the stored values of ``X``: (values, locate), where ``locate(i)`` gives (row, col) of value i."""
    parts = _sparse_parts(X)
    if parts is not None:
        fmt, data, indices, indptr = parts
        indptr = np.asarray(indptr[:])
        for start in range(0, int(indptr[-1]), CHUNK_VALUES):
            values = np.asarray(data[start : start + CHUNK_VALUES])

            def locate(i, start=start):
                major = int(np.searchsorted(indptr, start + i, side="right") - 1)
                minor = int(indices[start + i])
                return (major, minor) if fmt == "csr" else (minor, major)

            yield values, locate
        return
    n_rows = X.shape[0]
    n_cols = X.shape[1]
    for start in range(0, n_rows, CHUNK_ROWS):
        block = np.asarray(X[start : start + CHUNK_ROWS])

        def locate(i, start=start):
            return start + int(i) // n_cols, int(i) % n_cols

        yield block.ravel(), locate


def scan_values(X, *, integers: bool) -> ValueScan:
    """One pass over every stored value of ``X`` (dense or sparse, in memory or backed)."""
    scan = ValueScan()
    for values, locate in _value_chunks(X):
        if values.size == 0:
            continue
        if values.dtype.kind not in "biuf":
            values = values.astype(np.float64)
        scan.n_values += values.size
        finite = np.isfinite(values)
        if not finite.all():
            bad = np.flatnonzero(~finite)
            scan.nonfinite += bad.size
            scan.first_nonfinite = scan.first_nonfinite or locate(bad[0])
        good = values[finite]
        if good.size:
            scan.minimum = min(scan.minimum, float(good.min()))
            scan.maximum = max(scan.maximum, float(good.max()))
        negative = np.flatnonzero(finite & (values < 0))
        if negative.size:
            scan.negative += negative.size
            scan.first_negative = scan.first_negative or locate(negative[0])
        if integers and values.dtype.kind == "f":
            safe = np.where(finite, values, 0.0)
            off = np.flatnonzero(np.abs(safe - np.round(safe)) > 1e-6)
            if off.size:
                scan.nonintegral += off.size
                if scan.first_nonintegral is None:
                    scan.first_nonintegral = (*locate(off[0]), float(values[off[0]]))
    return scan


def value_problems(adata: ad.AnnData, *, where: str, values: str) -> list[str]:
    """Problems of ``X`` against the declared kind of ``values`` (whole matrix, streamed)."""
    if adata.X is None:
        return [f"{where}: X is missing; store the expression matrix in X"]
    scan = scan_values(adata.X, integers=values == "counts")

    def at(pos) -> str:
        return f"cell {str(adata.obs_names[pos[0]])!r}, gene {str(adata.var_names[pos[1]])!r}"

    problems = []
    if scan.nonfinite:
        problems.append(
            f"{where}: X has {scan.nonfinite} non-finite value(s) (NaN or inf; first at {at(scan.first_nonfinite)}); "
            "fix or remove those cells"
        )
    if scan.negative:
        problems.append(
            f"{where}: X has {scan.negative} negative value(s) (min {scan.minimum:.4g}, first at {at(scan.first_negative)}); "
            "give raw counts (values: counts) or log1p of normalised counts (values: log-normalised), not scaled or centred data"
        )
    if values == "counts" and scan.nonintegral:
        row, col, value = scan.first_nonintegral
        problems.append(
            f"{where}: values: counts is declared, but X has {scan.nonintegral} non-integer value(s) "
            f"(e.g. {value:.4g} at {at((row, col))}); declare values: log-normalised for log-normalised data; {TPM_HINT}"
        )
    if values == "log-normalised" and scan.maximum > MAX_LOG_VALUE:
        problems.append(
            f"{where}: values: log-normalised is declared, but X reaches {scan.maximum:.4g}, too large for log1p of "
            f"normalised counts (at most {MAX_LOG_VALUE:g}); declare values: counts for raw counts; {TPM_HINT}"
        )
    return problems


# ----------------------------------------------------------------- obs
def _missing(column: pd.Series) -> np.ndarray:
    """Missing values of an obs column: NaN/None, and empty strings in text columns."""
    missing = column.isna().to_numpy()
    if column.dtype == object or isinstance(column.dtype, pd.CategoricalDtype) or pd.api.types.is_string_dtype(column):
        missing |= column.astype(str).str.strip().eq("").to_numpy() & ~missing
    return missing


def obs_problems(
    obs: pd.DataFrame, usages: Sequence[Usage], *, where: str, ontology=None
) -> list[str]:
    """Problems of the obs columns that the groups in ``usages`` read (presence, missing values, CL ids, fates)."""
    problems = []
    checked: set[tuple[str, str]] = set()
    columns = ", ".join(map(str, list(obs.columns)[:12])) + (", ..." if obs.shape[1] > 12 else "")
    for usage in usages:
        prefix = f"groups.{usage.group}"
        present_fates = []
        for key, field in usage.fields():
            name = f"obs column {key!r} ({prefix}.{field})"
            if key not in obs.columns:
                problems.append(f"{where}: {name} is missing (columns: {columns or 'none'}); add it or change {prefix}.{field}")
                continue
            if (key, field) in checked and field != "continuous_keys":
                continue
            checked.add((key, field))
            missing = _missing(obs[key])
            if missing.any():
                first = str(obs.index[np.flatnonzero(missing)[0]])
                problems.append(
                    f"{where}: {name} has {int(missing.sum())} missing value(s) (first: cell {first!r}); "
                    "fill them in or remove those cells"
                )
                continue
            if field == "ontology_key":
                problems += _ontology_problems(obs[key], where=where, name=name, prefix=prefix, ontology=ontology)
            if field == "continuous_keys":
                column = obs[key]
                if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
                    problems.append(f"{where}: {name} is not numeric (dtype {column.dtype}); store fate probabilities as numbers")
                    continue
                values = column.to_numpy(dtype=np.float64)
                bad = ~np.isfinite(values) | (values < 0)
                if bad.any():
                    i = np.flatnonzero(bad)[0]
                    problems.append(
                        f"{where}: {name} has {int(bad.sum())} negative or non-finite value(s) "
                        f"(first: cell {str(obs.index[i])!r}, {values[i]:.4g}); fate probabilities must be finite and >= 0"
                    )
                    continue
                present_fates.append(key)
        if present_fates and len(present_fates) == len(usage.settings.continuous_keys):
            sums = obs[present_fates].to_numpy(dtype=np.float64).sum(axis=1)
            off = np.flatnonzero(np.abs(sums - 1.0) > FATE_TOLERANCE)
            if off.size:
                i = off[0]
                problems.append(
                    f"{where}: {prefix}.continuous_keys ({', '.join(present_fates)}): the fates of {off.size} cell(s) "
                    f"do not sum to 1 (first: cell {str(obs.index[i])!r}, sum {sums[i]:.4g}; tolerance {FATE_TOLERANCE:g}); "
                    "give every cell a probability distribution over the fates"
                )
    return problems


def _ontology_problems(column: pd.Series, *, where: str, name: str, prefix: str, ontology) -> list[str]:
    if ontology is None:
        from cellquery.ontology import load_cell_ontology

        ontology = load_cell_ontology()
    values = sorted(set(column.astype(str)))
    unknown = [v for v in values if v not in ontology]
    if not unknown:
        return []
    return [
        f"{where}: {name} has {len(unknown)} value(s) that are not terms of the bundled {ontology.name} "
        f"({_quote(unknown)}); use Cell Ontology ids such as 'CL:0000236', or remove {prefix}.ontology_key"
    ]


def selection_problems(obs: pd.DataFrame, spec: Mapping, *, where: str, name: str) -> list[str]:
    """Problems of a dataset's ``split`` and ``exclude`` (columns, values, empty parts; the same for every seed)."""
    problems = []
    split = spec.get("split")
    if split:
        key = split["label_key"]
        if key not in obs.columns:
            return [f"{where}: obs column {key!r} (datasets.{name}.split.label_key) is missing; name an obs column of cell types"]
        if _missing(obs[key]).any():
            return [
                f"{where}: obs column {key!r} (datasets.{name}.split.label_key) has {int(_missing(obs[key]).sum())} "
                "missing value(s); fill them in or remove those cells"
            ]
        # the sizes of a stratified split are the same for every seed
        keep = split_mask(obs[key].astype(str).to_numpy(), fraction=split["fraction"], part=split["part"],
                          rng=np.random.default_rng(0))
        if not keep.any():
            problems.append(
                f"{where}: datasets.{name}.split: part {split['part']} of fraction {split['fraction']} is empty; "
                "change split.fraction"
            )
    exclude = spec.get("exclude")
    if exclude:
        key, drop = exclude["obs_key"], [str(v) for v in exclude["values"]]
        if key not in obs.columns:
            return problems + [f"{where}: obs column {key!r} (datasets.{name}.exclude.obs_key) is missing; name an obs column"]
        present = set(obs[key].astype(str))
        unknown = [v for v in drop if v not in present]
        if unknown:
            problems.append(
                f"{where}: datasets.{name}.exclude.values: {_quote(unknown)} not found in obs column {key!r} "
                f"(values: {_quote(sorted(present), 6)}); list values of that column"
            )
        elif present <= set(drop):
            problems.append(
                f"{where}: datasets.{name}.exclude removes every cell (obs column {key!r} holds only {_quote(sorted(present))}); "
                "exclude fewer values"
            )
    return problems


def name_problems(adata: ad.AnnData, *, where: str) -> list[str]:
    """Duplicated cell or gene names."""
    problems = []
    for names, what, axis, fix in (
        (adata.obs_names, "cell", "obs_names", "AnnData.obs_names_make_unique()"),
        (adata.var_names, "gene", "var_names", "AnnData.var_names_make_unique(), or sum the duplicated genes"),
    ):
        if not names.is_unique:
            duplicated = names[names.duplicated()].unique()
            problems.append(
                f"{where}: {axis}: {len(duplicated)} {what} name(s) occur more than once ({_quote(duplicated)}); "
                f"make them unique, e.g. with {fix}"
            )
    return problems


def dataset_problems(
    adata: ad.AnnData,
    *,
    where: str,
    values: str,
    usages: Sequence[Usage] = (),
    spec: Mapping | None = None,
    name: str = "dataset",
    ontology=None,
) -> list[str]:
    """Every problem of one dataset (in memory or opened backed), checked over the whole file.

    ``where`` names the user's file (or the dataset) in the messages,
    ``values`` is the declared kind of values, ``usages`` the groups that use
    the dataset and ``spec`` its config entry (``split``, ``exclude``).
    """
    key = ((spec or {}).get("embedding") or {}).get("obsm_key")
    if key:  # embedding-only dataset (cellquery.given): obs and obsm[key] instead of X
        from cellquery.given import embedding_problems

        if adata.n_obs == 0:
            return [f"{where}: the dataset has no cells"]
        problems = [p for p in name_problems(adata, where=where) if ": obs_names:" in p]  # genes unused
        problems += embedding_problems(adata, key, where=where, name=name)
        problems += obs_problems(adata.obs, usages, where=where, ontology=ontology)
        return problems + selection_problems(adata.obs, spec, where=where, name=name)
    if adata.n_obs == 0 or adata.n_vars == 0:
        return [f"{where}: X has {adata.n_obs} cells x {adata.n_vars} genes; the dataset needs cells and genes"]
    problems = name_problems(adata, where=where)
    problems += value_problems(adata, where=where, values=values)
    obs = adata.obs
    problems += obs_problems(obs, usages, where=where, ontology=ontology)
    if spec:
        problems += selection_problems(obs, spec, where=where, name=name)
    return problems


def checked_source_file(name: str, spec: Mapping, usages: Sequence[Usage] = (), cache_dir="resources", log=None):
    """The dataset's h5ad file (local or downloaded) and its cell count, after checking all of it opened backed.

    None for a simulated or bundled dataset (nothing to check before it is
    built). Every problem is written to ``log``; the first is raised as an
    :class:`InputError` that names the user's file and the field.
    """
    from cellquery.data.sources import source_file

    where = describe_source(name, spec)
    path = source_file(name, spec, cache_dir)
    if path is None:
        return None
    try:
        backed = ad.read_h5ad(path, backed="r")
    except Exception as err:  # h5py/anndata raise many types for a corrupt file
        raise InputError(
            f"{where}: not a readable h5ad file ({type(err).__name__}: {err}); write it with anndata's AnnData.write_h5ad"
        ) from err
    try:
        problems = dataset_problems(backed, where=where, values=spec.get("values"), usages=usages, spec=spec, name=name)
        n_obs = backed.n_obs
    except InputError:
        raise
    except Exception as err:  # h5py raises many types for a damaged file
        raise InputError(f"{where}: not a readable h5ad file ({type(err).__name__}: {err})") from err
    finally:
        backed.file.close()
    raise_problems(problems, log)
    return path, n_obs


def load_checked_dataset(name: str, spec: Mapping, usages: Sequence[Usage] = (), cache_dir="resources", log=None) -> ad.AnnData:
    """Load a dataset (:func:`cellquery.data.sources.load_dataset`) after checking all of it.

    A local or downloaded file is checked opened backed (streamed), before it
    is read into memory (:func:`checked_source_file`); a simulated or bundled
    dataset is checked in memory. Every problem is written to ``log``; the
    first is raised as an :class:`InputError` that names the user's file and
    the field.
    """
    checked = checked_source_file(name, spec, usages, cache_dir, log)
    return _load_checked(name, spec, checked, usages, cache_dir, log)


def _load_checked(name: str, spec: Mapping, checked, usages: Sequence[Usage], cache_dir, log) -> ad.AnnData:
    """The dataset in memory; ``checked`` is :func:`checked_source_file`'s answer (None: check it once built)."""
    from cellquery.data.sources import load_dataset

    adata = load_dataset(name, spec, cache_dir)
    if checked is None:  # simulated or bundled: nothing to check before it is built
        where = describe_source(name, spec)
        raise_problems(dataset_problems(adata, where=where, values=spec.get("values"), usages=usages, spec=spec, name=name), log)
    return adata


def _write_simulated_checked(name: str, spec: Mapping, dest, usages: Sequence[Usage], log) -> None:
    """A simulated dataset above the streaming bound: written chunk by chunk, then checked opened backed."""
    from cellquery.data.simulate import write_simulated
    from cellquery.io import atomic_path

    values = declared_values(name, spec)
    with atomic_path(dest) as tmp:
        write_simulated(tmp, name=name, values=values, **(spec.get("simulate") or {}))
        backed = ad.read_h5ad(tmp, backed="r")
        try:
            problems = dataset_problems(backed, where=describe_source(name, spec), values=values, usages=usages, spec=spec, name=name)
        finally:
            backed.file.close()
        raise_problems(problems, log)


def write_checked_dataset(name: str, spec: Mapping, dest, usages: Sequence[Usage] = (), *, stream_above: int,
                          cache_dir="resources", log=None) -> None:
    """Check dataset ``name`` and write it whole to ``dest`` (csr rows); nothing is written when a check fails.

    An h5ad file with more than ``stream_above`` cells (config
    ``preprocess.backed_above_cells``) is checked backed and copied with its
    matrix untouched (:func:`cellquery.data.stream.stream_dataset`); a simulated
    dataset that large is written chunk by chunk
    (:func:`cellquery.data.simulate.write_simulated`) and checked backed; every
    other dataset is read into memory (:func:`load_checked_dataset`).
    """
    import scipy.sparse as sp

    from cellquery.data.stream import stream_dataset
    from cellquery.io import write_h5ad

    checked = checked_source_file(name, spec, usages, cache_dir, log)
    if checked is not None and checked[1] > stream_above and not spec.get("embedding"):
        stream_dataset(name, checked[0], dest, values=spec["values"])
        return
    if checked is None and simulated_cells(spec) > stream_above:
        _write_simulated_checked(name, spec, dest, usages, log)
        return
    adata = _load_checked(name, spec, checked, usages, cache_dir, log)
    if sp.issparse(adata.X) and adata.X.format == "csc":  # later steps read rows in chunks
        adata.X = adata.X.tocsr()
    write_h5ad(adata, dest)


# ----------------------------------------------------------------- group
def detected_genes(X, genes: np.ndarray) -> np.ndarray:
    """Per cell, how many of the columns ``genes`` (boolean mask) hold a value > 0 (scanpy's filter_cells count)."""
    n = X.shape[0]
    counts = np.zeros(n, dtype=np.int64)
    parts = _sparse_parts(X)
    if parts is not None and parts[0] == "csc":
        _, data, indices, indptr = parts
        indptr = np.asarray(indptr[:])
        for col in np.flatnonzero(genes):
            lo, hi = int(indptr[col]), int(indptr[col + 1])
            rows = np.asarray(indices[lo:hi])[np.asarray(data[lo:hi]) > 0]
            counts += np.bincount(rows, minlength=n)
        return counts
    for start in range(0, n, CHUNK_ROWS):
        block = X[start : start + CHUNK_ROWS]
        if sp.issparse(block):
            block = sp.csr_matrix(block)[:, genes]
            counts[start : start + block.shape[0]] = np.asarray((block > 0).sum(axis=1)).ravel()
        else:
            block = np.asarray(block)[:, genes]
            counts[start : start + block.shape[0]] = (block > 0).sum(axis=1)
    return counts


@dataclass
class LoadedDataset:
    """A loaded dataset of a group: its name, config entry, obs and var names and per-cell QC input."""

    name: str
    spec: Mapping
    adata: ad.AnnData  # opened backed, or in memory

    @property
    def where(self) -> str:
        return describe_source(self.name, self.spec)


def resampled_size(labels: np.ndarray, fraction: float) -> int:
    """Cells a label-stratified subsample keeps (:func:`cellquery.resample.stratified_rows`)."""
    if fraction >= 1.0:
        return len(labels)
    _, counts = np.unique(labels, return_counts=True)
    return int(sum(label_sample_size(c, fraction) for c in counts))


def group_problems(
    reference: Sequence[LoadedDataset],
    query: Sequence[LoadedDataset],
    *,
    group: str,
    settings: GroupSettings,
    seeds: Sequence[int],
    k: int,
    min_genes: int = 20,
    min_shared_genes: int = MIN_SHARED_GENES,
) -> tuple[list[str], pd.DataFrame]:
    """Problems of one group that need all its datasets, and the cells every seed keeps.

    Reference and query must share ``min_shared_genes`` genes (the genes of
    all datasets of a side are intersected, as the preprocess step does). For
    every seed, each side must keep cells after ``split``, ``exclude``, QC
    (``min_genes`` detected shared genes) and ``resample``, and the reference
    at least ``k`` cells. Returns (problems, table with one row per seed and
    side: ``seed, side, n_cells, n_types, n_genes``).
    """
    prefix = f"groups.{group}"
    problems: list[str] = []
    sides = {"reference": list(reference), "query": list(query)}
    genes = {}
    for side, datasets in sides.items():
        names = datasets[0].adata.var_names
        for d in datasets[1:]:
            names = names.intersection(d.adata.var_names, sort=False)
        genes[side] = names
    shared = genes["reference"].intersection(genes["query"], sort=False)
    wheres = {side: ", ".join(d.where for d in datasets) for side, datasets in sides.items()}
    if len(shared) < min_shared_genes:
        examples = {side: _quote(genes[side][:2], 2) for side in sides}
        problems.append(
            f"{prefix}: reference ({wheres['reference']}) and query ({wheres['query']}) share {len(shared)} genes, fewer "
            f"than preprocess.min_shared_genes = {min_shared_genes} (reference {len(genes['reference'])} genes, e.g. "
            f"{examples['reference']}; query {len(genes['query'])}, e.g. {examples['query']}); use one kind of gene "
            "identifier in both (e.g. Ensembl ids), or lower preprocess.min_shared_genes"
        )
        return problems, pd.DataFrame(columns=["seed", "side", "n_cells", "n_types", "n_genes"])
    passes_qc = {}
    for datasets in sides.values():
        for d in datasets:
            mask = d.adata.var_names.isin(shared)
            passes_qc[d.name] = detected_genes(d.adata.X, mask) >= min_genes
    fractions = {"reference": settings.reference_fraction, "query": settings.query_fraction}
    rows = []
    for seed in seeds:
        for side, datasets in sides.items():
            labels, details = [], []
            for d in datasets:
                chosen = selected_rows(d.adata.obs, d.spec, seed=seed, where=d.where)
                kept = chosen & passes_qc[d.name]
                labels.append(d.adata.obs[settings.label_key].astype(str).to_numpy()[kept])
                details.append(f"{d.where}: {d.adata.n_obs} cells, {int(chosen.sum())} after split/exclude, {int(kept.sum())} after QC")
            labels = np.concatenate(labels)
            n = resampled_size(labels, fractions[side])
            rows.append(dict(seed=seed, side=side, n_cells=n, n_types=len(set(labels)), n_genes=len(shared)))
            if n == 0:
                problems.append(
                    f"{prefix}: the {side} of seed {seed} has no cells left after split, exclude and QC "
                    f"(min_genes {min_genes} of {len(shared)} shared genes; {'; '.join(details)}); "
                    "check datasets.<name>.exclude and split, or lower preprocess.min_genes"
                )
            elif side == "reference" and n < k:
                problems.append(
                    f"config: k = {k} exceeds the {n} reference cells of {prefix} in seed {seed} (after split, exclude, "
                    "QC and resample); lower k or give the group more reference cells"
                )
    return problems, pd.DataFrame(rows, columns=["seed", "side", "n_cells", "n_types", "n_genes"])


def open_loaded(paths: Sequence[str | os.PathLike], names: Sequence[str], specs: Mapping) -> list[LoadedDataset]:
    """The loaded datasets ``results/data/<name>.h5ad`` of one side of a group, opened backed."""
    return [LoadedDataset(name, specs[name], read_h5ad(path, backed=True)) for path, name in zip(paths, names)]
