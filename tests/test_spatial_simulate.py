"""The spatial simulator: domain-dependent abundance, niche signal, negative types only in the sections."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from scipy.spatial.distance import cdist
from scipy.stats import spearmanr

from cellquery.data.simulate import TYPE_NAMES
from cellquery.data.simulate_spatial import (
    DEFAULT_EXCLUDE,
    DOMAIN_NAMES,
    NICHE_GROUPS,
    _niche_group_of_type,
    domain_type_probabilities,
    niche_programmes,
    simulate_dissociated_reference,
    simulate_sections,
)
from cellquery.errors import InputError


@pytest.fixture(scope="module")
def sections():
    return simulate_sections(3000, sections=["s1", "s2"], seed=5)


def _lognorm(x):
    x = np.asarray(x.toarray() if sp.issparse(x) else x, dtype=float)
    return np.log1p(x / x.sum(axis=1, keepdims=True) * 1e4)


def test_layout(sections):
    assert sections.shape == (6000, 550)
    assert sections.obsm["spatial"].shape == (6000, 2) and sections.obs_names.is_unique
    assert list(sections.obs["section"].cat.categories) == ["s1", "s2"]
    assert (sections.obs["donor"].astype(str) == sections.obs["section"].astype(str)).all()  # sections are the batches
    x = sections.X
    assert isinstance(x, sp.csr_matrix) and np.array_equal(x.data, np.round(x.data)) and x.data.min() > 0
    again = simulate_sections(3000, sections=["s1", "s2"], seed=5)
    assert (again.X != sections.X).nnz == 0 and np.array_equal(again.obsm["spatial"], sections.obsm["spatial"])


def test_domain_dependent_abundance(sections):
    probs = domain_type_probabilities()
    # the model's domains differ (e.g. plasma cells: medulla vs follicle) ...
    plasma = TYPE_NAMES.index("plasma cell")
    assert probs[DOMAIN_NAMES.index("medulla"), plasma] > 20 * probs[DOMAIN_NAMES.index("follicle"), plasma]
    # ... and every domain's observed type fractions match its own probabilities (binomial, 4.5 sd)
    types = sections.obs["cell_type"].to_numpy()
    domains = sections.obs["domain"].to_numpy()
    for d, name in enumerate(DOMAIN_NAMES):
        in_d = domains == name
        n = in_d.sum()
        assert n > 800  # four bands across each section
        observed = np.array([(types[in_d] == t).mean() for t in TYPE_NAMES])
        sd = np.sqrt(probs[d] * (1 - probs[d]) / n)
        assert np.all(np.abs(observed - probs[d]) <= 4.5 * sd + 1e-12), name
    # domains are bands across x: mean x increases with the domain index within a section
    s1 = sections.obs["section"].to_numpy() == "s1"
    mean_x = [sections.obsm["spatial"][s1 & (domains == name), 0].mean() for name in DOMAIN_NAMES]
    assert np.all(np.diff(mean_x) > 0)


def test_niche_composition_matches_brute_force(sections):
    radius = sections.uns["simulation"]["niche_radius"]
    group = _niche_group_of_type()[[TYPE_NAMES.index(t) for t in sections.obs["cell_type"]]]
    for name in ("s1", "s2"):
        rows = np.flatnonzero(sections.obs["section"].to_numpy() == name)[:700]
        coords = sections.obsm["spatial"][np.flatnonzero(sections.obs["section"].to_numpy() == name)]
        all_rows = np.flatnonzero(sections.obs["section"].to_numpy() == name)
        dist = cdist(sections.obsm["spatial"][rows], coords)
        for i, row in enumerate(rows):
            neighbours = all_rows[(dist[i] <= radius) & (all_rows != row)]
            expected = np.bincount(group[neighbours], minlength=len(NICHE_GROUPS)) / max(len(neighbours), 1)
            np.testing.assert_allclose(sections.obsm["niche_composition"][row], expected)


def test_niche_signal_present_and_absent_without_strength(sections):
    niche = niche_programmes(0, 550)
    flat = simulate_sections(3000, sections=["s1", "s2"], seed=5, niche_strength=0.0)
    assert (flat.obs["cell_type"] == sections.obs["cell_type"]).all()  # same tissue, no niche term
    for adata, low, high in ((sections, 0.15, 1.0), (flat, -0.1, 0.1)):
        x = _lognorm(adata.X)
        for cell_type in ("naive B cell", "CD14-positive monocyte"):  # within one type: expression varies by niche only
            cells = (adata.obs["cell_type"] == cell_type).to_numpy()
            for g in range(len(NICHE_GROUPS)):
                score = x[np.ix_(cells, niche[g] > 0)].mean(axis=1)
                r = spearmanr(adata.obsm["niche_composition"][cells, g], score)[0]
                assert low < r < high, (cell_type, NICHE_GROUPS[g], r)


def test_dissociated_reference_lacks_negative_types_and_coordinates(sections):
    reference = simulate_dissociated_reference(1500, seed=6)
    assert "spatial" not in reference.obsm
    assert list(reference.var_names) == list(sections.var_names)
    ref_types = set(reference.obs["cell_type"].astype(str))
    assert not ref_types & set(DEFAULT_EXCLUDE)
    for negative in DEFAULT_EXCLUDE:
        assert (sections.obs["cell_type"] == negative).sum() >= 10
    assert ref_types | set(DEFAULT_EXCLUDE) == set(sections.obs["cell_type"].astype(str))
    assert not set(reference.obs_names) & set(sections.obs_names)
    assert reference.n_obs < 3000


def test_bad_input():
    with pytest.raises(InputError, match="sections"):
        simulate_sections(10, sections="s1")
    with pytest.raises(InputError, match="niche_radius"):
        simulate_sections(10, niche_radius=-1.0)
    with pytest.raises(InputError, match="exclude_types"):
        simulate_dissociated_reference(10, exclude_types=["no such type"])
