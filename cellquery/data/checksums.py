"""``sha256: first-use`` for URL datasets: record the digest of the first download in a lock file, verify later ones.

A URL dataset needs a checksum, but the checksum of a public file is often not
known in advance. With ``sha256: first-use`` the first download computes the
file's sha256 and records it in ``config/checksums.lock`` (config key
``checksums_lock``), a file the user commits beside the config; every later
download (a fresh clone, a deleted cache) is verified against the record, so
a file that changes at its URL stops the run with one line naming the dataset.
The lock is a TSV (``dataset``, ``url``, ``sha256``), one row per dataset.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from cellquery.errors import InputError

FIRST_USE = "first-use"
DEFAULT_LOCK = "config/checksums.lock"
HEADER = "dataset\turl\tsha256\n"
COMMENT = "# sha256 of each first-use URL dataset's first download (cellquery.data.checksums); commit this file\n"


def _parse(text: str, path) -> dict[str, tuple[str, str]]:
    records = {}
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or line.startswith("#") or line + "\n" == HEADER:
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise InputError(f"{path}: line {number} is not 'dataset<TAB>url<TAB>sha256'; fix or delete the line")
        records[fields[0]] = (fields[1], fields[2].lower())
    return records


def read_lock(path: str | os.PathLike) -> dict[str, tuple[str, str]]:
    """The records of a lock file: dataset -> (url, sha256); empty when the file does not exist."""
    path = Path(path)
    return _parse(path.read_text(), path) if path.exists() else {}


def record_checksum(path: str | os.PathLike, dataset: str, url: str, sha256: str) -> None:
    """Add (or replace) the record of ``dataset`` in the lock file.

    The file is locked (``fcntl.flock``) while it is read and rewritten, so
    loading jobs of different datasets may record at the same time.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        handle.seek(0)
        records = _parse(handle.read(), path)
        records[dataset] = (url, sha256.lower())
        handle.seek(0)
        handle.truncate()
        handle.write(COMMENT + HEADER + "".join(f"{d}\t{u}\t{s}\n" for d, (u, s) in sorted(records.items())))
        handle.flush()
        os.fsync(handle.fileno())


def fetch_first_use(dataset: str, url: str, dest: str | os.PathLike, lock: str | os.PathLike = DEFAULT_LOCK) -> Path:
    """Download ``url`` to ``dest``: record its sha256 in ``lock`` on first use, else verify it against the record.

    A mismatch (or a recorded URL other than ``url``) is an
    :class:`InputError` naming the dataset and the lock file; nothing is left
    at ``dest`` then. A cached ``dest`` that matches the record is reused.
    """
    from cellquery.data.sources import download, sha256sum
    from cellquery.io import atomic_path

    dest = Path(dest)
    recorded = read_lock(lock).get(dataset)
    if recorded is not None:
        old_url, expected = recorded
        if old_url != url:
            raise InputError(
                f"dataset {dataset}: {lock} records the sha256 of {old_url}, but the config now names {url}; "
                f"delete the dataset's line from {lock} to record the new file on its first download"
            )
        if dest.exists() and sha256sum(dest) == expected:
            return dest
    with atomic_path(dest) as tmp:
        download(url, tmp)
        got = sha256sum(tmp)
        if recorded is None:
            record_checksum(lock, dataset, url, got)
        elif got != expected:
            raise InputError(
                f"dataset {dataset}: sha256 mismatch: {url} now has {got}, {lock} recorded {expected} on its first "
                f"download; the file at the URL changed: check it, and delete the dataset's line from {lock} to accept it"
            )
    return dest
