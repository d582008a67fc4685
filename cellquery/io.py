"""Reading and writing the files that pass between pipeline stages.

Every writer is atomic: it writes to a temporary file beside the target and
renames it into place, so a failed step leaves no partial result behind.
Every reader checks what the next step relies on and raises
:class:`cellquery.errors.InputError` naming the file and the field.
"""

from __future__ import annotations

import contextlib
import glob
import os
import re
import socket
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterable, Iterator

import numpy as np
import pandas as pd

from cellquery.errors import InputError

if TYPE_CHECKING:
    import anndata as ad

# anndata is imported where a function reads or writes AnnData, not here: it takes 0.75 s of a
# job's start (measured; it brings zarr and xarray along), and the jobs that only read and
# write tables (figures, gathers, skipped runs) never need it.

__all__ = [
    "atomic_path",
    "remove_stale_temporaries",
    "read_h5ad",
    "write_h5ad",
    "read_table",
    "write_table",
    "require_obs",
    "check_finite",
    "embedding_adata",
    "read_obs",
    "read_embedding",
]


# Temporary files of atomic writes: ".<target name>.cqtmp~<host>~<pid>~<random><suffix>", so that
# a later run can tell those of killed jobs (their process is gone) from those of running ones.
_TEMP = re.compile(r"^\.(?P<target>.+)\.cqtmp~(?P<host>[^~]*)~(?P<pid>\d+)~")
# A temporary file written on another host is taken as left behind after this long.
FOREIGN_TEMP_AGE_S = 7 * 24 * 3600


def _host() -> str:
    return socket.gethostname().replace("~", "-")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _stale(path: Path, now: float) -> bool:
    match = _TEMP.match(path.name)
    if match is None:
        return False
    if match["host"] == _host():
        return not _alive(int(match["pid"]))
    try:
        return now - path.stat().st_mtime > FOREIGN_TEMP_AGE_S
    except OSError:
        return False


def remove_stale_temporaries(root: str | os.PathLike) -> list[Path]:
    """Remove the temporary files of atomic writes under ``root`` whose writer is gone; return them.

    A job killed while writing (``kill -9``, a cluster's time limit) leaves
    its hidden temporary file beside the output; the Snakefile's ``onstart``
    calls this, and :func:`atomic_path` clears those of its own target.
    Files of running processes on this host are kept; files from other hosts
    are removed after :data:`FOREIGN_TEMP_AGE_S`.
    """
    removed = []
    now = time.time()
    for folder, _, files in os.walk(root):
        for name in files:
            path = Path(folder) / name
            if name.startswith(".") and _stale(path, now):
                with contextlib.suppress(OSError):
                    path.unlink()
                    removed.append(path)
    return removed


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` on success.

    On an exception the temporary file is removed and ``path`` is left
    untouched. Temporary files of earlier writers of the same ``path`` that
    were killed (their process is gone) are removed first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    now = time.time()
    for old in path.parent.glob(f".{glob.escape(path.name)}.cqtmp~*"):
        if _stale(old, now):
            with contextlib.suppress(OSError):
                old.unlink()
    prefix = f".{path.name}.cqtmp~{_host()}~{os.getpid()}~"
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=path.suffix, dir=path.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; results are ordinary files
    tmp = Path(tmp)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def read_h5ad(path: str | os.PathLike, backed: bool = False) -> ad.AnnData:
    """Read an h5ad file; a missing or corrupt file is an :class:`InputError`."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    import anndata as ad

    try:
        return ad.read_h5ad(path, backed="r" if backed else None)
    except Exception as err:  # h5py/anndata raise many types for a corrupt file
        raise InputError(
            f"{path}: not a readable h5ad file ({type(err).__name__}: {err}); write it with anndata's AnnData.write_h5ad"
        ) from err


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike) -> None:
    """Write ``adata`` atomically (compressed)."""
    with atomic_path(path) as tmp:
        adata.write_h5ad(tmp, compression="gzip")


def read_table(path: str | os.PathLike, required: Iterable[str] = ()) -> pd.DataFrame:
    """Read a tab-separated table and check that ``required`` columns exist."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        table = pd.read_csv(path, sep="\t", keep_default_na=False, na_values=["", "nan", "NaN"])
    except Exception as err:
        raise InputError(f"{path}: not a readable tab-separated table ({err})") from err
    missing = [c for c in required if c not in table.columns]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(map(repr, missing))}")
    return table


def write_table(table: pd.DataFrame, path: str | os.PathLike) -> None:
    """Write a tab-separated table atomically."""
    with atomic_path(path) as tmp:
        table.to_csv(tmp, sep="\t", index=False)


def require_obs(adata: ad.AnnData, keys: Iterable[str | None], source: str | os.PathLike) -> None:
    """Check that every key in ``keys`` (None skipped) is an obs column without missing values."""
    for key in keys:
        if key is None:
            continue
        if key not in adata.obs.columns:
            known = ", ".join(map(str, adata.obs.columns[:12]))
            raise InputError(f"{source}: obs column {key!r} is missing (columns: {known})")
        if adata.obs[key].isna().any():
            n = int(adata.obs[key].isna().sum())
            raise InputError(f"{source}: obs column {key!r} has {n} missing value(s)")


def check_finite(values: np.ndarray, source: str | os.PathLike, field: str) -> None:
    """Raise :class:`InputError` if ``values`` (dense or sparse) holds NaN or inf."""
    data = values.data if hasattr(values, "tocsr") else np.asarray(values)
    if data.dtype.kind in "fc" and not np.isfinite(data).all():
        n = int((~np.isfinite(data)).sum())
        raise InputError(f"{source}: {field} has {n} non-finite value(s) (NaN or inf)")


EMBEDDING_KEY = "X_emb"


def embedding_adata(obs: pd.DataFrame, embedding: np.ndarray, uns: dict | None = None) -> ad.AnnData:
    """An AnnData that carries cells' obs and their embedding (``obsm["X_emb"]``), no matrix."""
    import anndata as ad

    adata = ad.AnnData(obs=obs.copy(), uns=uns or {})
    adata.obsm[EMBEDDING_KEY] = np.ascontiguousarray(embedding, dtype=np.float32)
    return adata


def _read_element(path: str | os.PathLike, key: str):
    import h5py

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: file not found")
    try:
        with h5py.File(path, "r") as handle:
            if key not in handle:
                raise InputError(f"{path}: {key} is missing")
            element = handle[key]
            if isinstance(element, h5py.Dataset) and element.attrs.get("encoding-type") == "array":
                # a dense array is a plain dataset in anndata's on-disk format: read without anndata's import
                return element[()]
            import anndata as ad

            return ad.io.read_elem(element)
    except InputError:
        raise
    except Exception as err:
        raise InputError(f"{path}: not a readable h5ad file ({type(err).__name__}: {err})") from err


def read_obs(path: str | os.PathLike) -> pd.DataFrame:
    """Read only the cell annotations (obs) of an h5ad file."""
    return _read_element(path, "obs")


def read_embedding(path: str | os.PathLike) -> np.ndarray:
    """Read only ``obsm["X_emb"]`` of an embedding file, as C-contiguous float32."""
    embedding = np.ascontiguousarray(_read_element(path, f"obsm/{EMBEDDING_KEY}"), dtype=np.float32)
    check_finite(embedding, path, f"obsm/{EMBEDDING_KEY}")
    return embedding
