"""Seeds redraw the experiment: label-stratified subsamples of reference and query."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest

from cellquery.errors import InputError
from cellquery.resample import resample_group, stratified_rows
from cellquery.settings import GroupSettings


def adata(labels):
    obs = pd.DataFrame({"cell_type": labels}, index=[f"c{i}" for i in range(len(labels))])
    return ad.AnnData(X=np.arange(len(labels), dtype=np.float32)[:, None], obs=obs)


LABELS = ["A"] * 50 + ["B"] * 30 + ["C"] * 3 + ["D"]


def test_every_type_keeps_its_fraction_and_at_least_one_cell():
    rows = stratified_rows(np.array(LABELS), 0.8, np.random.default_rng(0))
    kept = pd.Series(np.array(LABELS)[rows]).value_counts().to_dict()
    # round(0.8 * n) per type, at least one: 40, 24, 2, 1
    assert kept == {"A": 40, "B": 24, "C": 2, "D": 1}
    assert (np.diff(rows) > 0).all()  # sorted, no repeats: the data's order is kept


def test_the_same_seed_draws_the_same_cells_and_another_seed_other_cells():
    reference, query = adata(LABELS), adata(LABELS[::-1])
    first = resample_group(reference, query, label_key="cell_type", seed=3, reference_fraction=0.5, query_fraction=0.5)
    again = resample_group(reference, query, label_key="cell_type", seed=3, reference_fraction=0.5, query_fraction=0.5)
    other = resample_group(reference, query, label_key="cell_type", seed=4, reference_fraction=0.5, query_fraction=0.5)
    for a, b in zip(first, again):
        assert a.obs_names.tolist() == b.obs_names.tolist()
    assert first[0].obs_names.tolist() != other[0].obs_names.tolist()
    # reference and query are drawn from their own random streams
    positions = [np.flatnonzero(np.isin(x.obs_names, y.obs_names)) for x, y in ((first[0], reference), (first[1], query))]
    ref_rows = np.flatnonzero(reference.obs_names.isin(first[0].obs_names))
    qry_rows = np.flatnonzero(query.obs_names.isin(first[1].obs_names))
    assert len(positions[0]) and len(ref_rows) == first[0].n_obs and len(qry_rows) == first[1].n_obs
    assert not np.array_equal(ref_rows, qry_rows)


def test_fraction_one_keeps_the_data_unchanged():
    reference, query = adata(LABELS), adata(LABELS)
    out = resample_group(reference, query, label_key="cell_type", seed=0)
    assert out[0] is reference and out[1] is query


def test_bad_fraction_is_an_input_error():
    with pytest.raises(InputError, match="fractions must be in"):
        stratified_rows(np.array(LABELS), 0.0, np.random.default_rng(0))


def test_group_settings_read_the_resample_entry():
    group = GroupSettings.from_config({"label_key": "cell_type", "resample": {"reference_fraction": 0.8, "query_fraction": 0.7}})
    assert (group.reference_fraction, group.query_fraction) == (0.8, 0.7)
    assert GroupSettings.from_config({"label_key": "cell_type"}).reference_fraction == 1.0
