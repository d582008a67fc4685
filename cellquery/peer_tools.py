"""What the wrappers of count-based peer tools share: their raw-counts input and a torch thread limit.

scVI, scANVI and Cell BLAST model raw counts; they take them as a CSR float32
matrix. Their networks are small: on CPU, torch runs with few intra-op threads
(more threads made training several times slower on shared CPUs, where
spin-waiting threads compete), restored when the tool is done.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import anndata as ad
import numpy as np
import scipy.sparse as sp

from cellquery.errors import InputError


def require_counts(adata: ad.AnnData, source: str, why: str) -> None:
    """Raise :class:`InputError` unless ``adata`` has raw counts in ``layers["counts"]``."""
    if "counts" not in adata.layers:
        raise InputError(f"{source}: layers['counts'] (raw counts) is missing; {why}")


def raw_counts(adata: ad.AnnData, source: str, tool: str, genes: Sequence[str] | None = None) -> sp.csr_matrix:
    """The raw counts (of ``genes``, default all genes) as CSR float32, the input of count models."""
    require_counts(adata, source, f"{tool} models raw counts")
    if genes is not None:
        missing = [g for g in genes if g not in adata.var_names]
        if missing:
            raise InputError(f"{source}: gene {missing[0]!r} of the HVGs is missing ({len(missing)} missing)")
    x = adata.layers["counts"] if genes is None else adata[:, list(genes)].layers["counts"]
    return x.astype(np.float32).tocsr() if sp.issparse(x) else sp.csr_matrix(np.asarray(x, dtype=np.float32))


@contextlib.contextmanager
def limited_torch_threads(n: int | None) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads (None: leave as is), then restore."""
    import torch

    before = torch.get_num_threads()
    if n:
        torch.set_num_threads(int(n))
    try:
        yield
    finally:
        torch.set_num_threads(before)
