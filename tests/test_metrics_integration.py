"""scIB integration metrics via scib-metrics: ordering sanity checks (JAX on CPU)."""

import numpy as np
import pytest

from cellquery.errors import InputError
from cellquery.metrics import integration_metrics

KEYS = {"ilisi", "clisi", "silhouette_label", "silhouette_batch", "graph_connectivity", "kbet"}


def _data(separated: bool, seed: int = 0):
    rng = np.random.default_rng(seed)
    n = 240
    labels = np.repeat(["t1", "t2"], n // 2)
    batches = np.tile(["b1", "b2"], n // 2)  # both batches in both types
    X = rng.normal(size=(n, 4))
    X[labels == "t2", 0] += 20.0  # cell types far apart
    if separated:
        X[batches == "b2", 1] += 20.0  # batches far apart too
    return X, labels, batches


def test_mixed_vs_separated_ordering():
    mixed = integration_metrics(*_data(False), n_neighbors=30)
    sep = integration_metrics(*_data(True), n_neighbors=30)
    assert set(mixed) == KEYS and set(sep) == KEYS
    # iLISI scaled to [0, 1]: near 1 when neighbourhoods hold both batches equally, 0 for one batch
    assert mixed["ilisi"] > 0.7 and sep["ilisi"] < 0.05
    # kBET: pure-batch neighbourhoods are all rejected -> acceptance 0
    assert mixed["kbet"] > 0.9 and sep["kbet"] == 0.0
    assert mixed["silhouette_batch"] > 0.8 > 0.3 > sep["silhouette_batch"]
    # separated: each type splits into two unconnected equal halves -> largest component 60/120 = 0.5
    assert mixed["graph_connectivity"] > 0.9 and sep["graph_connectivity"] == pytest.approx(0.5)
    # cell types are far apart in both: cLISI (scaled) 1 and high label silhouette
    for res in (mixed, sep):
        assert res["clisi"] > 0.95 and res["silhouette_label"] > 0.7


def test_single_batch_error():
    X, labels, _ = _data(False)
    with pytest.raises(InputError, match="batches"):
        integration_metrics(X, labels, ["b"] * len(labels))


_CACHED_RUN = """
import json, sys
import numpy as np
sys.path.insert(0, {tests!r})
from test_metrics_integration import _data
from cellquery.metrics.integration import integration_metrics, use_compilation_cache
use_compilation_cache({cache!r})
print(json.dumps(integration_metrics(*_data(True), n_neighbors=30)))
"""


def test_compilation_cache_is_filled_and_gives_the_same_numbers(tmp_path):
    import json
    import subprocess
    import sys
    from pathlib import Path

    cache = tmp_path / "jax"
    code = _CACHED_RUN.format(tests=str(Path(__file__).parent), cache=str(cache))
    direct = integration_metrics(*_data(True), n_neighbors=30)
    runs = []
    for _ in range(2):  # the first process fills the cache, the second reads it
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if not runs[1:]:
            filled = sorted(p.name for p in cache.glob("*-cache"))
            assert filled, "the first process wrote no compiled kernel"
    assert sorted(p.name for p in cache.glob("*-cache")) == filled  # the second compiled nothing new
    for run in runs:
        assert run.keys() == direct.keys()
        np.testing.assert_allclose([run[k] for k in sorted(run)], [direct[k] for k in sorted(direct)], rtol=1e-6, equal_nan=True)
