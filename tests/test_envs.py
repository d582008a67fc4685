"""The conda environments in envs/ agree with the rules, what their code imports, pyproject.toml and PyPI.

Every job of the workflow's DAG (toy and default configs, the scale sweep, with
gpu 0 and 1) is asked for the env Snakemake would deploy for it (the rule's
``conda:``, evaluated on the job's wildcards), and the modules its script imports,
followed through cellquery, must be provided by that env's packages; no env holds
a package that none of its jobs import. No conda is needed: the DAG is built by
Snakemake's API without creating any env.
"""

from __future__ import annotations

import ast
import os
import re
import socket
import subprocess
import sys
import tomllib
from functools import cache
from importlib.metadata import PackageNotFoundError, packages_distributions, version
from pathlib import Path

import pytest
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from packaging.version import Version

REPO = Path(__file__).resolve().parents[1]
ENVS = REPO / "envs"
ENV_FILES = sorted(ENVS.glob("*.yaml"))
TORCH_CPU_INDEX = "--extra-index-url https://download.pytorch.org/whl/cpu"
# Rules that request a GPU (resources gpu=gpu_request()) and the env families with a -gpu twin.
GPU_RULES = {"embed", "conformal_embed", "predict", "build_index", "query_index"}
GPU_TWINS = {"index", "scvi", "cellblast"}
# A conda package of a -gpu twin that replaces a pip package of its CPU env.
CONDA_PROVIDES = {"faiss-gpu": "faiss-cpu"}
# Packages that a job needs although no cellquery code imports them by name:
# (env package) -> (package that loads it, where).
LOADED_BY = {
    "jaxlib": ("jax", "jax's compiled backend, imported by jax itself"),
    "igraph": ("scanpy", "sc.tl.leiden(flavor='igraph') in cellquery.metrics.novelty.leiden_clusters"),
}
# config, extra configs, targets of the DAGs whose jobs are checked
DAGS = {
    "toy": (["config/toy.yaml", "config/toy_paper.yaml"], []),
    "paper": (["config/paper.yaml"], []),
    "default": (["config/config.yaml"], []),
    "scale": (["config/config.yaml", "config/scale.yaml"], ["scale"]),
}


# --- env files --------------------------------------------------------------------------


def pyproject_pins() -> dict[str, str]:
    """name -> pinned version of every dependency in pyproject.toml ([project].dependencies)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = {}
    for line in project["dependencies"]:
        req = Requirement(line)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"pyproject.toml: {line!r} is not an exact pin"
        pins[canonicalize_name(req.name)] = specs[0].version
    return pins


@cache
def read_env(name: str) -> dict:
    return yaml.safe_load((ENVS / name).read_text())


def pip_entries(env: dict) -> list[str]:
    sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(sections) == 1, "expected one pip section"
    return sections[0]


def env_pins(name: str) -> dict[str, str]:
    """package -> version of an env: its pip pins, and conda packages other than python and pip."""
    pins = {}
    for entry in pip_entries(read_env(name)):
        if entry.startswith("-"):
            continue
        req = Requirement(entry)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{name}: pip entry {entry!r} is not an exact pin"
        assert canonicalize_name(req.name) not in pins, f"{name}: {req.name} listed twice"
        pins[canonicalize_name(req.name)] = specs[0].version
    for spec in read_env(name)["dependencies"]:
        if isinstance(spec, str) and not re.match(r"(python|pip)\b", spec):
            package, _, pinned = spec.partition("=")
            assert pinned, f"{name}: conda package {spec!r} is not pinned"
            pins[canonicalize_name(package)] = pinned.lstrip("=")
    return pins


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_file_is_minimal_conda_and_pinned_pip(path):
    env = read_env(path.name)
    assert env.get("channels") == ["conda-forge", "nodefaults"], f"{path.name}: channels {env.get('channels')}"
    conda_specs = [d for d in env["dependencies"] if isinstance(d, str)]
    pythons = [d for d in conda_specs if re.match(r"python\b", d)]
    assert len(pythons) == 1, f"{path.name}: expected one python spec, got {pythons}"
    requires = SpecifierSet(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"])
    assert pythons[0].split("=", 1)[1] + ".0" in requires, f"{path.name}: {pythons[0]} outside requires-python {requires}"
    assert "pip" in conda_specs, f"{path.name}: pip entries need the pip package"
    # conda holds python and pip only; faiss-gpu in the index GPU twin (no CUDA faiss on PyPI)
    others = sorted(set(conda_specs) - {"pip", *pythons})
    assert others == (["faiss-gpu=1.9.0"] if path.name == "index-gpu.yaml" else []), f"{path.name}: conda packages {others}"
    # The library is not installed into the env (it comes from the workflow on PYTHONPATH).
    options = [e for e in pip_entries(env) if e.startswith("-")]
    torch_cpu = "torch" in env_pins(path.name) and not path.stem.endswith("-gpu")
    assert options == ([TORCH_CPU_INDEX] if torch_cpu else []), f"{path.name}: pip options {options}"


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_pins_agree_with_pyproject_and_installed(path):
    project = pyproject_pins()
    for name, pinned in env_pins(path.name).items():
        if name in CONDA_PROVIDES:  # a conda-forge build, not in pyproject (CI installs faiss-cpu)
            continue
        assert project.get(name) == pinned, f"{path.name}: {name}=={pinned} but pyproject.toml pins {project.get(name)}"
        try:
            installed = version(name)
        except PackageNotFoundError:
            pytest.fail(f"{path.name}: {name}=={pinned} is not installed in {sys.prefix}")
        # PEP 440: a pin without a local label (torch==2.13.0) matches 2.13.0+cpu
        assert Version(installed).public == Version(pinned).public, f"{path.name}: {name}=={pinned} but {installed} is installed"


@pytest.mark.parametrize("family", sorted(GPU_TWINS))
def test_gpu_twin_pins_what_its_cpu_env_pins(family):
    """A -gpu twin holds the packages of its CPU env that its GPU rules import, at the same pins."""
    cpu, gpu = env_pins(f"{family}.yaml"), env_pins(f"{family}-gpu.yaml")
    for name, pinned in gpu.items():
        if name in CONDA_PROVIDES:
            assert CONDA_PROVIDES[name] in cpu, f"{family}-gpu.yaml: {name} replaces {CONDA_PROVIDES[name]}, not in {family}.yaml"
            continue
        assert cpu.get(name) == pinned, f"{family}-gpu.yaml: {name}=={pinned} but {family}.yaml pins {cpu.get(name)}"
    assert any(n in gpu for n in ("torch", "faiss-gpu")), f"{family}-gpu.yaml has no GPU build"


# --- what the jobs import -------------------------------------------------------------------


def module_file(name: str) -> Path | None:
    """The source file of a cellquery module, or None."""
    path = REPO.joinpath(*name.split("."))
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def _import_targets(node: ast.AST) -> list[tuple[str, set[str] | None]]:
    """(module, names taken from it, None for the whole module) of an import statement."""
    if isinstance(node, ast.Import):
        return [(alias.name, None) for alias in node.names]
    if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
        names = {alias.name for alias in node.names}
        return [(node.module, names)] + [(f"{node.module}.{n}", None) for n in names]
    return []


def _optional(node: ast.AST, parents: dict) -> bool:
    """An import inside ``try: ... except ImportError`` (the code runs without the package)."""
    while node in parents:
        node = parents[node]
        if isinstance(node, ast.Try) and any(
            isinstance(h.type, ast.Name) and h.type.id in ("ImportError", "ModuleNotFoundError") for h in node.handlers
        ):
            return True
    return False


@cache
def _parsed(path: Path):
    tree = ast.parse(path.read_text())
    parents = {child: parent for parent in ast.walk(tree) for child in ast.iter_child_nodes(parent)}
    defs = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    return tree, parents, defs


# Registries whose plugin chooses the job's env (rules/common.smk: method_env): a job
# is checked with the plugin its params name. Other registries (index backends, voters)
# are chosen by config within one env, which must hold every entry.
ENV_CHOOSING_REGISTRIES = {"EMBEDDINGS", "PREDICTORS"}


def _registries(tree: ast.Module) -> dict[str, list[str]]:
    """name -> dotted entries of the module-level ``NAME = Registry(kind, key, {...})`` of a module."""
    found = {}
    for node in tree.body:
        if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Call)
                and getattr(node.value.func, "id", None) == "Registry" and len(node.value.args) == 3):
            entries = ast.literal_eval(node.value.args[2])
            found.update({target.id: list(entries.values()) for target in node.targets})
    return found


def imported_modules(roots: list[tuple[Path, set[str] | None]]) -> set[str]:
    """Top-level non-cellquery modules that code reachable from ``roots`` imports.

    A root or an imported cellquery module counts with its module-level imports (and
    those of its parent packages, which Python runs first) and, for ``from m import f``,
    the imports inside ``f`` and inside the functions and classes of ``m`` that ``f``
    names (whole module for ``import m``). Imports guarded by ``except ImportError``
    are optional. Code that names a registry reaches every entry of it, except the
    registries in ENV_CHOOSING_REGISTRIES, whose plugin is a root of the job.
    """
    external, done = set(), set()
    todo = list(roots)
    while todo:
        path, names = todo.pop()
        key = (path, frozenset(names) if names is not None else None)
        if key in done:
            continue
        done.add(key)
        tree, parents, defs = _parsed(path)
        if names is None:
            bodies = [tree]
        else:  # the named definitions and those they name, within the module
            wanted, stack = set(), [n for n in names if n in defs]
            while stack:
                name = stack.pop()
                if name in wanted:
                    continue
                wanted.add(name)
                stack += [n.id for n in ast.walk(defs[name]) if isinstance(n, ast.Name) and n.id in defs]
            top_level = [n for n in tree.body if not isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
            bodies = [defs[n] for n in wanted] + top_level
            # a module-level `from m import a, b` follows only the names this module uses
            used = set(names) | {n.id for body in bodies for n in ast.walk(body)
                                 if isinstance(n, ast.Name) and not isinstance(parents.get(n), ast.Assign | ast.AnnAssign)}
        registries = _registries(tree)
        for node in (node for body in bodies for node in ast.walk(body)):
            if (isinstance(node, ast.Name) and node.id in registries and node.id not in ENV_CHOOSING_REGISTRIES
                    and not (isinstance(parents.get(node), ast.Assign) and node in parents[node].targets)):
                for entry in registries[node.id]:
                    module, _, attr = entry.partition(":")
                    todo.append((module_file(module), {attr} if attr else None))
            for module, taken in _import_targets(node):
                top = module.split(".")[0]
                if top == "cellquery":
                    if names is not None and parents.get(node) is tree and isinstance(node, ast.ImportFrom):
                        # `from m import sub` of a submodule: all of it if used, else its module level
                        last = module.rsplit(".", 1)[-1]
                        taken = (taken & used) if taken is not None else (None if last in used else set())
                    parts = module.split(".")
                    for i in range(1, len(parts)):  # parent packages run their module level first
                        parent = module_file(".".join(parts[:i]))
                        if parent is not None:
                            todo.append((parent, set()))
                    target = module_file(module)
                    if target is not None:
                        todo.append((target, taken))
                elif top not in sys.stdlib_module_names and top != "snakemake" and not _optional(node, parents):
                    external.add(top)
    return external


@cache
def module_distributions() -> dict[str, set[str]]:
    """top-level module -> the installed distributions (canonical names) that provide it."""
    return {m: {canonicalize_name(d) for d in ds} for m, ds in packages_distributions().items()}


def plugin_roots(params) -> list[tuple[Path, set[str] | None]]:
    """The embedding or predictor plugin module a job's params select (its env follows it)."""
    from cellquery.embed import EMBEDDINGS
    from cellquery.predictors import PREDICTORS

    registries = {"embedding": EMBEDDINGS, "predictor": PREDICTORS}
    roots, stack = [], [params]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            for key, sub in value.items():
                if key in registries and isinstance(sub, str) and sub in registries[key]:
                    module, _, attr = registries[key]._entries[sub].partition(":")
                    roots.append((module_file(module), {attr} if attr else None))
                else:
                    stack.append(sub)
        elif isinstance(value, (list, tuple)):
            stack += list(value)
    return roots


@cache
def dag_jobs(dag: str, gpu: int) -> tuple[tuple[str, str, str, frozenset], ...]:
    """(rule, env file name, job name, external modules imported) of every job of a DAG."""
    from snakemake.api import SnakemakeApi
    from snakemake.settings.types import (ConfigSettings, DAGSettings, DeploymentMethod, DeploymentSettings,
                                          OutputSettings, Quietness, ResourceSettings, StorageSettings)
    import tempfile

    configs, targets = DAGS[dag]
    rows, walked = [], {}
    with tempfile.TemporaryDirectory() as workdir, SnakemakeApi(OutputSettings(quiet={Quietness.ALL})) as api:
        workflow_api = api.workflow(
            resource_settings=ResourceSettings(cores=1),
            config_settings=ConfigSettings(configfiles=[REPO / c for c in configs], config={"gpu": gpu}),
            storage_settings=StorageSettings(),
            deployment_settings=DeploymentSettings(deployment_method={DeploymentMethod.CONDA}),
            snakefile=REPO / "Snakefile",
            workdir=Path(workdir),
        )
        workflow_api.dag(DAGSettings(targets=set(targets), forceall=True))
        # Snakemake has no public call that lists jobs without creating their envs: build
        # the DAG as `snakemake --list-conda-envs` does and read each job's env spec.
        workflow = workflow_api._workflow
        workflow.dag_settings = DAGSettings(targets=set(targets), forceall=True)
        workflow._prepare_dag(forceall=True, ignore_incomplete=False, lock_warn_only=False)
        workflow._build_dag()
        for job in workflow.dag.jobs:
            spec = job.conda_env_spec
            if job.rule.script is None:
                assert spec is None and not job.rule.shellcmd, f"rule {job.rule.name} runs code without a conda env"
                continue
            assert spec is not None, f"rule {job.rule.name} runs a script but has no conda: directive"
            env_path = Path(spec.file.get_path_or_uri(secret_free=True)).resolve()
            assert env_path.parent == ENVS and env_path.is_file(), f"rule {job.rule.name}: env {env_path} not in envs/"
            script = (Path(job.rule.basedir.get_path_or_uri(secret_free=True)) / job.rule.script).resolve()
            roots = ((script, None), *plugin_roots(dict(job.params.items())))
            key = tuple((path, frozenset(names) if names is not None else None) for path, names in roots)
            if key not in walked:
                walked[key] = imported_modules(list(roots))
            modules = walked[key]
            name = f"{job.rule.name}({', '.join(f'{k}={v}' for k, v in job.wildcards_dict.items())})"
            rows.append((job.rule.name, env_path.name, name, frozenset(modules)))
    return tuple(rows)


# toy: every GPU family on a GPU rule; default: the peers the toy run leaves out; scale: the sweep
CHECKED = [("toy", 0), ("toy", 1), ("default", 0), ("scale", 0)]


@pytest.mark.parametrize("dag,gpu", CHECKED)
def test_every_job_env_provides_what_its_code_imports(dag, gpu):
    provided = {}
    for rule, env, job, modules in dag_jobs(dag, gpu):
        if env not in provided:
            pins = set(env_pins(env))
            provided[env] = pins | {CONDA_PROVIDES[p] for p in pins if p in CONDA_PROVIDES}
        for module in sorted(modules):
            dists = module_distributions().get(module)
            assert dists, f"{job}: imports {module}, which no installed distribution provides"
            assert dists & provided[env], f"rule {rule} ({job}) imports {module} ({sorted(dists)}) but envs/{env} lacks it"


def test_gpu_config_key_switches_only_the_gpu_rules_to_gpu_envs():
    for dag in ("toy",):
        cpu = {job: (rule, env) for rule, env, job, _ in dag_jobs(dag, 0)}
        gpu = {job: (rule, env) for rule, env, job, _ in dag_jobs(dag, 1)}
        assert cpu.keys() == gpu.keys()
        switched = set()
        for job, (rule, env) in cpu.items():
            family = env.removesuffix(".yaml")
            expected = f"{family}-gpu.yaml" if rule in GPU_RULES and family in GPU_TWINS else env
            assert not family.endswith("-gpu"), f"{job}: gpu 0 uses {env}"
            assert gpu[job][1] == expected, f"{job}: gpu 1 uses {gpu[job][1]}, expected {expected}"
            switched |= {(rule, family)} if expected != env else set()
        # The toy DAG has every GPU family on a GPU rule.
        assert {f for _, f in switched} == GPU_TWINS, switched
        assert {r for r, _ in switched} == GPU_RULES, switched


def test_checked_dags_run_every_embedding_and_predictor():
    """The import check above covers every plugin that chooses a job's env."""
    from cellquery.embed import EMBEDDINGS
    from cellquery.predictors import PREDICTORS

    configured = set()
    for configs, _ in DAGS.values():
        for c in configs:
            for spec in yaml.safe_load((REPO / c).read_text()).get("methods", {}).values():
                configured |= {spec.get("embedding"), spec.get("predictor")}
    assert set(EMBEDDINGS) | set(PREDICTORS) <= configured, sorted((set(EMBEDDINGS) | set(PREDICTORS)) - configured)


def test_no_env_holds_a_package_none_of_its_jobs_imports():
    used: dict[str, set[str]] = {}
    for dag, gpu in CHECKED:
        for _, env, _, modules in dag_jobs(dag, gpu):
            dists = set().union(*(module_distributions().get(m, set()) for m in modules))
            used.setdefault(env, set()).update(dists)
    assert set(used) == {p.name for p in ENV_FILES}, f"envs no job uses: {sorted({p.name for p in ENV_FILES} - set(used))}"
    for env, dists in used.items():
        for package in env_pins(env):
            package = CONDA_PROVIDES.get(package, package)
            loader = LOADED_BY.get(package, (None,))[0]
            assert package in dists or (loader in dists), f"envs/{env}: no job using it imports {package}"


def test_import_walk_on_hand_written_modules(tmp_path, monkeypatch):
    """The walk follows `from m import f` into f and what f names, skips optional imports and other functions."""
    pkg = tmp_path / "cellquery"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("import numpy\n")
    (pkg / "sub" / "tools.py").write_text(
        "import pandas\n"
        "def used():\n    import scipy\n    return helper()\n"
        "def helper():\n    import sklearn\n"
        "def unused():\n    import torch\n"
        "try:\n    import zstandard\nexcept ImportError:\n    zstandard = None\n"
    )
    script = tmp_path / "script.py"
    script.write_text("import os\nfrom cellquery.sub.tools import used\n")
    monkeypatch.setattr(sys.modules[__name__], "REPO", tmp_path)
    _parsed.cache_clear()
    assert imported_modules([(script, None)]) == {"numpy", "pandas", "scipy", "sklearn"}
    assert imported_modules([(pkg / "sub" / "tools.py", None)]) == {"numpy", "pandas", "scipy", "sklearn", "torch"} - {"numpy"}
    _parsed.cache_clear()


# --- the pip part resolves on PyPI ------------------------------------------------------------


def _pypi_reachable() -> bool:
    try:
        socket.create_connection(("pypi.org", 443), timeout=5).close()
        return True
    except OSError:
        return False


@pytest.mark.skipif(os.environ.get("CQ_SKIP_PIP_RESOLVE") == "1", reason="CQ_SKIP_PIP_RESOLVE=1 (about 6 min: pip fetches the metadata of every pin, torch's CUDA set included)")
@pytest.mark.skipif(not _pypi_reachable(), reason="pypi.org is not reachable: the pip part of the envs cannot be resolved offline")
@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_pip_part_resolves_on_pypi(path, tmp_path):
    """pip resolves each env's pip section on PyPI alone (no local wheels, mirrors or constraints).

    The CPU torch index (download.pytorch.org) is left out where it is listed: this
    checks that every pin exists and the set is consistent on PyPI, whose torch 2.13.0
    has the same dependencies.
    """
    if sys.version_info[:2] != (3, 11):
        pytest.skip("the envs pin python=3.11: pip resolves for the Python it runs on")
    entries = [e for e in pip_entries(read_env(path.name)) if e != TORCH_CPU_INDEX]
    requirements = tmp_path / "requirements.txt"
    requirements.write_text("\n".join(entries) + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull  # no pip.conf: no extra indexes, find-links or constraints
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--dry-run", "--quiet", "--ignore-installed",
         "--index-url", "https://pypi.org/simple", "--timeout", "60", "-r", str(requirements)],
        capture_output=True, text=True, env=env, timeout=900,
    )
    assert proc.returncode == 0, f"{path.name}: pip cannot resolve its pip section:\n{proc.stderr[-3000:]}"


# --- how jobs reach cellquery ---------------------------------------------------------------


def test_put_first_on_pythonpath_keeps_other_entries_once():
    from cellquery.envs import put_first_on_pythonpath

    environ = {"PYTHONPATH": os.pathsep.join(["/b", "/w", "", "/c"])}
    assert put_first_on_pythonpath("/w", environ) == os.pathsep.join(["/w", "/b", "/c"])
    assert put_first_on_pythonpath("/w", environ) == os.pathsep.join(["/w", "/b", "/c"])  # idempotent
    assert put_first_on_pythonpath("/w", {}) == "/w"


def test_a_python_without_cellquery_imports_the_workflows_through_pythonpath():
    """A Python that has not installed cellquery (the base interpreter of this venv, as an env's)
    imports the workflow's cellquery once the workflow's folder is on PYTHONPATH."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info.major}.{sys.version_info.minor}"
    code = "import cellquery, sys; print(cellquery.__file__)"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    without = subprocess.run([str(base), "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert without.returncode != 0 and "No module named 'cellquery'" in without.stderr
    from cellquery.envs import put_first_on_pythonpath

    put_first_on_pythonpath(str(REPO), env)
    found = subprocess.run([str(base), "-c", code], capture_output=True, text=True, env=env, cwd="/")
    assert found.returncode == 0, found.stderr
    assert Path(found.stdout.strip()) == REPO / "cellquery" / "__init__.py"
