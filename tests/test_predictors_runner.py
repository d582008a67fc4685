"""The predictor runner: registry look-up and the input checks it makes before any predictor runs."""

import dataclasses

import pytest

from cellquery.errors import InputError
from cellquery.predictors import PREDICTORS, run_predictor

ABSENT = "erythroblast"


@pytest.fixture(scope="module")
def data(small_group):
    return small_group(ABSENT)


def run(data, group, predictor, genes=None):
    ref, qry, hvg = data
    return run_predictor(ref, qry, hvg if genes is None else genes, predictor=predictor, params={}, group=group, seed=0)


def test_unknown_predictor_names_the_config_key(data, group):
    with pytest.raises(InputError, match=r"methods\.<name>\.predictor: unknown predictor 'nope' \(known: cellblast, cellmapper"):
        run(data, group, "nope")


@pytest.mark.parametrize("predictor", ["cellblast", "scanvi"])
def test_count_predictors_refuse_log_normalised_groups(data, group, predictor):
    ref, qry, genes = data
    ref_log, qry_log = ref.copy(), qry.copy()
    ref_log.uns["values"] = qry_log.uns["values"] = "log-normalised"
    with pytest.raises(InputError, match=f"predictor {predictor}: needs raw counts"):
        run((ref_log, qry_log, genes), group, predictor)


@pytest.fixture
def runtime_present(monkeypatch, predictor):
    """The predictor's tool counts as installed (R, an optional package): the input checks run on any machine.

    Without it a machine lacking R refuses Seurat and SingleR with "needs R" before any input check.
    """
    module = PREDICTORS[predictor]
    if hasattr(module, "runtime_missing"):
        monkeypatch.setattr(module, "runtime_missing", lambda: None)


@pytest.mark.usefixtures("runtime_present")
@pytest.mark.parametrize("predictor", list(PREDICTORS))
def test_missing_obs_columns_are_refused(data, group, predictor):
    with pytest.raises(InputError, match=r"reference: obs column 'nope' \(label key\) is missing"):
        run(data, dataclasses.replace(group, label_key="nope"), predictor)
    with pytest.raises(InputError, match=r"reference: obs column 'fate_x' \(continuous key\) is missing"):
        run(data, dataclasses.replace(group, continuous_keys=("fate_x",)), predictor)
    with pytest.raises(InputError, match=r"reference: obs column 'plate' \(batch key\) is missing"):
        run(data, dataclasses.replace(group, batch_keys=("plate",)), predictor)


@pytest.mark.usefixtures("runtime_present")
@pytest.mark.parametrize("predictor", list(PREDICTORS))
def test_genes_missing_from_reference_or_query_are_refused(data, group, predictor):
    genes = data[2]
    with pytest.raises(InputError, match=r"hvg: gene 'absent' is not in both reference and query \(1 missing\)"):
        run(data, group, predictor, genes=[*genes, "absent"])
