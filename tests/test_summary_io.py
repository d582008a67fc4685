"""Tidy tables and atomic writes."""

import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.io import atomic_path, embedding_adata, read_embedding, read_obs, read_table, write_h5ad
from cellquery.summary import SUMMARY_COLUMNS, combine_metrics, gather_benchmarks, metric_rows, skipped_rows

RUN = {"group": "g", "method": "pca", "index": "flat", "transfer": "majority", "seed": 0, "reported_as": "pca"}


def test_metric_rows_and_combine(tmp_path):
    metric_rows(RUN, {"mba": 0.5, "accuracy": 0.75}).to_csv(tmp_path / "a.tsv", sep="\t", index=False)
    skipped_rows({**RUN, "method": "x"}, "needs raw counts").to_csv(tmp_path / "b.tsv", sep="\t", index=False)
    summary = combine_metrics([tmp_path / "b.tsv", tmp_path / "a.tsv"])
    assert list(summary.columns) == SUMMARY_COLUMNS
    assert summary[["method", "metric"]].values.tolist() == [["pca", "accuracy"], ["pca", "mba"], ["x", "skipped: needs raw counts"]]
    assert summary.value.iloc[0] == 0.75 and np.isnan(summary.value.iloc[2])


def test_combine_names_a_file_with_missing_columns(tmp_path):
    pd.DataFrame({"group": ["g"], "value": [1]}).to_csv(tmp_path / "bad.tsv", sep="\t", index=False)
    with pytest.raises(InputError, match="bad.tsv: missing column"):
        combine_metrics([tmp_path / "bad.tsv"])


def test_gather_benchmarks(tmp_path):
    root = tmp_path / "benchmarks"
    (root / "embed" / "g").mkdir(parents=True)
    header = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
    (root / "embed" / "g" / "seed0.tsv").write_text(header + "2.5\t0:00:02\t310.2\t1\t1\t1\t0\t0\t95.0\t2.4\n")
    (root / "aggregate.tsv").write_text(header + "0.5\t0:00:00\t80.0\t1\t1\t1\t0\t0\t50.0\t0.3\n")
    table = gather_benchmarks([root / "embed/g/seed0.tsv", root / "aggregate.tsv"], root=root)
    assert table[["rule", "job", "wall_s", "max_rss_mb"]].values.tolist() == [
        ["embed", "embed/g/seed0", 2.5, 310.2],
        ["aggregate", "aggregate", 0.5, 80.0],
    ]


def test_atomic_path_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.tsv"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("partial")
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_embedding_round_trip_reads_only_what_is_asked(tmp_path):
    obs = pd.DataFrame({"cell_type": ["a", "b"]}, index=["c1", "c2"])
    write_h5ad(embedding_adata(obs, np.array([[1.0, 2.0], [3.0, 4.0]])), tmp_path / "e.h5ad")
    np.testing.assert_array_equal(read_embedding(tmp_path / "e.h5ad"), [[1, 2], [3, 4]])
    assert read_obs(tmp_path / "e.h5ad")["cell_type"].tolist() == ["a", "b"]
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "missing.tsv")


def test_embedding_read_equals_anndatas_without_importing_it(tmp_path):
    """A dense obsm/X_emb is read with h5py alone (no anndata import, 0.75 s of a job); anything else by anndata."""
    import subprocess
    import sys

    import anndata as ad

    rng = np.random.default_rng(0)
    values = rng.normal(size=(5, 3))
    write_h5ad(embedding_adata(pd.DataFrame(index=[f"c{i}" for i in range(5)]), values), tmp_path / "dense.h5ad")
    expected = ad.read_h5ad(tmp_path / "dense.h5ad").obsm["X_emb"]
    np.testing.assert_array_equal(read_embedding(tmp_path / "dense.h5ad"), expected)
    code = (
        "import sys; from cellquery.io import read_embedding; "
        f"e = read_embedding({str(tmp_path / 'dense.h5ad')!r}); print('anndata' in sys.modules, e.sum())"
    )
    loaded, total = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert loaded == "False" and float(total) == pytest.approx(float(expected.sum()), rel=1e-6)
    # obs (an h5ad group) is read by anndata's reader
    assert read_obs(tmp_path / "dense.h5ad").index.tolist() == [f"c{i}" for i in range(5)]


def test_nan_embedding_is_an_error(tmp_path):
    obs = pd.DataFrame(index=["c1", "c2"])
    write_h5ad(embedding_adata(obs, np.array([[1.0, np.nan], [3.0, 4.0]])), tmp_path / "e.h5ad")
    with pytest.raises(InputError, match="e.h5ad: obsm/X_emb has 1 non-finite"):
        read_embedding(tmp_path / "e.h5ad")
