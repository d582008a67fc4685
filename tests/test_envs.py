"""The conda environments in envs/ agree with the rules, pyproject.toml and the installed packages."""

import re
import sys
import tomllib
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest
from packaging.version import Version
import yaml
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

REPO = Path(__file__).resolve().parents[1]
ENV_FILES = sorted((REPO / "envs").glob("*.yaml"))
RULE_FILES = [REPO / "Snakefile", *sorted((REPO / "rules").glob("*.smk"))]
# Directives after which a rule runs code in its conda environment.
CODE_DIRECTIVES = ("script", "shell", "notebook", "wrapper")
# Needed by the process that submits jobs, not inside a rule's environment.
SUBMIT_SIDE_ONLY = {"snakemake-executor-plugin-slurm"}


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


def env_pip_pins(env: dict, path: Path) -> tuple[dict[str, str], list[str]]:
    """(name -> version of the `name==version` pip entries, the other pip entries) of an environment."""
    pip_sections = [d["pip"] for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip_sections) == 1, f"{path.name}: expected one pip section"
    pins, other = {}, []
    for entry in pip_sections[0]:
        if entry.startswith("-"):
            other.append(entry)
            continue
        req = Requirement(entry)
        specs = list(req.specifier)
        assert len(specs) == 1 and specs[0].operator == "==", f"{path.name}: pip entry {entry!r} is not an exact pin"
        name = canonicalize_name(req.name)
        assert name not in pins, f"{path.name}: {name} listed twice"
        pins[name] = specs[0].version
    return pins, other


def rule_blocks(path: Path) -> dict[str, str]:
    """name -> text of every `rule`/`checkpoint` block of a Snakemake file."""
    text = path.read_text()
    starts = list(re.finditer(r"^(?:rule|checkpoint)\s+(\w+)\s*:", text, flags=re.M))
    blocks = {}
    for match in starts:
        # A block ends at the next line that starts at column 0 with code.
        rest = text[match.end():]
        end = re.search(r"^\S", rest, flags=re.M)
        blocks[match.group(1)] = rest[: end.start()] if end else rest
    return blocks


def conda_path(block: str) -> str | None:
    match = re.search(r"^\s+conda:\s*(?:\n\s*)?([\"'])(.+?)\1", block, flags=re.M)
    return match.group(2) if match else None


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_env_file_parses(path):
    env = yaml.safe_load(path.read_text())
    assert isinstance(env, dict), f"{path.name}: not a mapping"
    assert env.get("channels"), f"{path.name}: no channels"
    assert isinstance(env.get("dependencies"), list) and env["dependencies"], f"{path.name}: no dependencies"
    conda_specs = [d for d in env["dependencies"] if isinstance(d, str)]
    pythons = [d for d in conda_specs if re.match(r"python\b", d)]
    assert len(pythons) == 1, f"{path.name}: expected one python spec, got {pythons}"
    # The pinned Python must satisfy pyproject's requires-python.
    python_version = pythons[0].split("=", 1)[1].lstrip("=")
    requires = SpecifierSet(tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"])
    assert python_version + ".0" in requires, f"{path.name}: python={python_version} outside requires-python {requires}"
    assert "pip" in conda_specs, f"{path.name}: pip entries need the pip package"


def test_every_rule_uses_an_existing_env_file():
    rules_seen = {}
    for path in RULE_FILES:
        for name, block in rule_blocks(path).items():
            assert name not in rules_seen, f"rule {name} defined in {rules_seen[name]} and {path.name}"
            rules_seen[name] = path.name
            runs_code = any(re.search(rf"^\s+{d}:", block, flags=re.M) for d in CODE_DIRECTIVES)
            env = conda_path(block)
            if not runs_code:
                continue
            assert env is not None, f"{path.relative_to(REPO)}: rule {name} runs code but has no conda: directive"
            # Snakemake resolves conda: paths relative to the file that defines the rule.
            target = (path.parent / env).resolve()
            assert target.is_file(), f"{path.relative_to(REPO)}: rule {name}: conda env {env} not found ({target})"
            assert target.parent == REPO / "envs", f"rule {name}: env {env} is not in envs/"
    # The parse saw the rules the workflow has (a miss here means the parser is wrong).
    expected = {"all", "load_dataset", "preprocess", "hvg", "embed", "build_index", "query_index", "transfer",
                "metrics", "record_skip", "aggregate", "gather_benchmarks", "figure_mba"}
    assert expected <= set(rules_seen), expected - set(rules_seen)


def test_rule_block_parser_on_a_hand_written_file(tmp_path):
    smk = tmp_path / "x.smk"
    smk.write_text(
        'rule a:\n    output: "a"\n    conda:\n        "../envs/x.yaml"\n    shell: "touch {output}"\n\n\n'
        "def helper():\n    pass\n\n\n"
        "rule b:\n    output: 'b'\n    conda: 'env.yaml'\n    script: 'b.py'\n\n"
        'checkpoint c:\n    output: "c"\n    shell: "touch c"\n'
    )
    blocks = rule_blocks(smk)
    assert list(blocks) == ["a", "b", "c"]
    assert [conda_path(b) for b in blocks.values()] == ["../envs/x.yaml", "env.yaml", None]
    assert "def helper" not in blocks["a"]


@pytest.mark.parametrize("path", ENV_FILES, ids=lambda p: p.name)
def test_pip_pins_agree_with_pyproject_and_installed(path):
    env = yaml.safe_load(path.read_text())
    pins, other = env_pip_pins(env, path)
    project = pyproject_pins()
    for name, pinned in pins.items():
        assert name in project, f"{path.name}: {name}=={pinned} is not a dependency in pyproject.toml"
        assert pinned == project[name], f"{path.name}: {name}=={pinned} but pyproject.toml pins {project[name]}"
    # The library itself is installed from the checkout: `-e ..` relative to envs/.
    editable = [o for o in other if o.startswith("-e")]
    assert len(editable) == 1, f"{path.name}: expected one `-e <repo>` entry, got {other}"
    target = (path.parent / editable[0][2:].strip()).resolve()
    assert target == REPO, f"{path.name}: {editable[0]} does not point at the repository root"
    if path.name == "cellquery-cpu.yaml":
        missing = set(project) - set(pins) - SUBMIT_SIDE_ONLY
        assert not missing, f"{path.name}: pyproject.toml dependencies missing from the env: {sorted(missing)}"
        for name, pinned in pins.items():
            try:
                installed = version(name)
            except PackageNotFoundError:
                pytest.fail(f"{path.name}: {name}=={pinned} is not installed in {sys.prefix}")
            # PEP 440: a pin without a local label (torch==2.13.0) matches 2.13.0+cpu
            assert Version(installed).public == Version(pinned).public, f"{path.name}: {name}=={pinned} but {installed} is installed"
