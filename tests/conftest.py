"""Fixtures shared by the test modules: a small simulated group for the predictors and embeddings,
and one run of config/toy.yaml for the end-to-end tests."""

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from cellquery.settings import GroupSettings

TYPES = ("CD14-positive monocyte", "naive B cell", "natural killer cell", "erythroblast")
FATES = ("fate_erythroid", "fate_myeloid", "fate_lymphoid")


@pytest.fixture(scope="session")
def group() -> GroupSettings:
    """The small group's annotation keys: cell type labels, study batches, Cell Ontology ids, lineage fates."""
    return GroupSettings(label_key="cell_type", batch_keys=("study",), ontology_key="cell_ontology_id", continuous_keys=FATES)


@pytest.fixture(scope="session")
def fates(group) -> list[str]:
    """The group's continuous annotations: fate probabilities over the three lineages."""
    return list(group.continuous_keys)


def _build_group(absent: str | None, group: GroupSettings):
    from cellquery.data.simulate import simulate_dataset
    from cellquery.hvg import select_hvg
    from cellquery.preprocess import prepare_group

    ref = simulate_dataset(400, studies=["s1", "s2"], seed=1, n_genes=600, include_types=[t for t in TYPES if t != absent])
    qry = simulate_dataset(200, studies=["s3"], seed=2, n_genes=600, include_types=list(TYPES))
    ref.uns["values"] = qry.uns["values"] = "counts"
    ref, qry = prepare_group(
        [ref], [qry], reference_sources=["ref"], query_sources=["qry"], label_key=group.label_key,
        batch_keys=list(group.batch_keys), ontology_key=group.ontology_key, continuous_keys=list(group.continuous_keys),
    )
    genes = select_hvg(ref, batch_key=group.batch_key, n_top_genes=200)["gene"].tolist()
    return ref, qry, genes


@pytest.fixture(scope="session")
def small_group(group):
    """``small_group(absent)``: preprocessed (reference, query, HVGs) of 400 + 200 simulated cells of four types.

    The cell type ``absent`` (None: none) is held out of the reference, so it
    is a negative type of the query. Each variant is built once per session;
    tests that change the AnnDatas change copies.
    """
    built = {}

    def get(absent: str | None = None):
        if absent not in built:
            built[absent] = _build_group(absent, group)
        return built[absent]

    return get


REPO = Path(__file__).resolve().parents[1]
TOY = REPO / "config/toy.yaml"
# the end-to-end run: the default DAG at toy size plus the paper run's other analyses at toy size
TOY_FILES = (TOY, REPO / "config/toy_paper.yaml")
TOY_TIMEOUT_S = 1800


def toy_config() -> dict:
    """The config of the end-to-end run: config/toy.yaml with config/toy_paper.yaml merged in, as Snakemake merges them."""
    from snakemake.utils import update_config

    config = yaml.safe_load(TOY.read_text())
    for path in TOY_FILES[1:]:
        update_config(config, yaml.safe_load(path.read_text()))
    return config


@dataclass
class ToyRun:
    """A finished local run of config/toy.yaml + config/toy_paper.yaml: its working directory, Snakemake's output and the config."""

    workdir: Path
    output: str
    config: dict


@pytest.fixture(scope="session")
def toy_run(tmp_path_factory) -> ToyRun:
    """config/toy.yaml + config/toy_paper.yaml run once with ``snakemake -c2``, shared by every end-to-end test (workflow, Slurm)."""
    workdir = tmp_path_factory.mktemp("toy")
    cmd = [sys.executable, "-m", "snakemake", "-s", str(REPO / "Snakefile"), "-d", str(workdir), "-c2", "--configfile", *map(str, TOY_FILES)]
    result = subprocess.run(cmd, capture_output=True, text=True, cwd=workdir, timeout=TOY_TIMEOUT_S)
    output = result.stdout + result.stderr
    if result.returncode != 0:
        pytest.fail(f"the toy run failed (exit {result.returncode}):\n{output[-8000:]}")
    return ToyRun(workdir, output, toy_config())


def _run_workflow_script(name: str, snakemake) -> None:
    """Run workflow_scripts/<name> with a stand-in ``snakemake`` object; close the log it opens as stderr."""
    import runpy

    stderr = sys.stderr
    try:
        runpy.run_path(str(REPO / "workflow_scripts" / name), init_globals={"snakemake": snakemake})
    finally:
        log, sys.stderr = sys.stderr, stderr
        if log is not stderr:
            log.close()


@pytest.fixture
def run_workflow_script():
    """``run_workflow_script(name, snakemake)``: a workflow script run in this process, as Snakemake would run it."""
    return _run_workflow_script
