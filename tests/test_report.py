"""`snakemake --report` from the finished toy run: every figure and table marked report(...) is in it,
byte for byte, with its caption and category, and the workflow description (report/workflow.rst)."""

from __future__ import annotations

import base64
import html
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import TOY_FILES

REPO = Path(__file__).resolve().parents[1]
# report(...) outputs of the scale sweep are built by its own target (`snakemake scale`), not by `all`
NOT_IN_ALL = ("results/scale/", "results/figures/query_time_vs_reference_size.png")
# the spatial figures are targets only when the config has a spatial group
SPATIAL_ONLY = ("results/figures/spatial_sections.png", "results/figures/spatial_methods.png")


def declared_report_outputs() -> dict[str, tuple[str, str]]:
    """path -> (caption file, category) of every ``report("path", caption=..., category=...)`` in rules/*.smk."""
    pattern = re.compile(r'report\(\s*"([^"]+)",\s*caption="([^"]+)",\s*category="([^"]+)",?\s*\)', flags=re.S)
    declared = {}
    for smk in sorted((REPO / "rules").glob("*.smk")):
        for path, caption, category in pattern.findall(smk.read_text()):
            declared[path] = ((smk.parent / caption).resolve(), category)
    return declared


def report_data(report: Path, name: str) -> dict:
    """The JSON of ``<script id="name"> var name = {...};`` in a Snakemake HTML report."""
    match = re.search(rf'<script id="{name}">\s*var {name} = (\{{.*?\}});\s*</script>', report.read_text(), flags=re.S)
    assert match, f"{report}: no {name} data"
    return json.loads(match.group(1))


def plain(text: str) -> str:
    """Text of a caption without HTML tags, rst inline markup and whitespace (rendering moves spaces)."""
    text = html.unescape(re.sub(r"<[^>]+>", " ", text)).replace("``", "")
    return "".join(text.split())


def check_workflow_description(report: Path, config: dict) -> str:
    """Assert that ``report``'s workflow description is report/workflow.rst rendered with ``config``."""
    match = re.search(r"var workflow_desc = (\".*?\");\s*$", report.read_text(), flags=re.M)
    assert match, f"{report}: no workflow description"
    description = plain(json.loads(match.group(1)))
    first = plain((REPO / "report/workflow.rst").read_text().split("\n\n")[0])
    assert first and first in description, "the workflow description is not report/workflow.rst"
    # the Jinja line about this run, filled in from the run's config
    run = (f"Thisrun:{len(config['groups'])}datasetgroup(s)({','.join(config['groups'])}),"
           f"{len(config['methods'])}method(s)")
    assert run in description, f"the workflow description does not describe this run: {run}"
    return description


def check_report(report: Path, workdir: Path, config: dict | None = None) -> dict:
    """Assert that ``report`` holds every report output of the default target of the run in ``workdir``
    (of its ``config``, where given)."""
    declared = {p: v for p, v in declared_report_outputs().items() if not p.startswith(NOT_IN_ALL)}
    if config is not None and not any("spatial" in group for group in config["groups"].values()):
        for path in SPATIAL_ONLY:
            declared.pop(path, None)
    results, categories = report_data(report, "results"), report_data(report, "categories")
    assert set(results) == set(declared), (sorted(set(declared) - set(results)), sorted(set(results) - set(declared)))
    for path, (caption_file, category) in declared.items():
        entry = results[path]
        header, _, payload = entry["data_uri"].partition(";base64,")
        assert (workdir / path).read_bytes() == base64.b64decode(payload), f"{path}: report data differ from the file"
        assert header.startswith(f"data:{entry['mime_type']}")
        assert entry["mime_type"] == ("image/png" if path.endswith(".png") else "text/tab-separated-values")
        # the caption is the rendered caption file: its first paragraph, as text
        first = plain(caption_file.read_text().split("\n\n")[0])
        assert first and first in plain(entry["caption"]), f"{path}: caption is not {caption_file.name}'s"
        assert path in [p for sub in categories[category].values() for p in sub], f"{path}: not under {category}"
    return declared


def test_report_of_the_toy_run_holds_every_figure_and_table_with_its_caption(toy_run, tmp_path):
    report = tmp_path / "report.html"
    cmd = [sys.executable, "-m", "snakemake", "--report", str(report), "-s", str(REPO / "Snakefile"),
           "-d", str(toy_run.workdir), "--configfile", *map(str, TOY_FILES)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=toy_run.workdir, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    declared = check_report(report, toy_run.workdir, toy_run.config)
    assert sum(p.endswith(".png") for p in declared) >= 12
    # the two tables, as tables (checked byte for byte above) under Tables
    assert {"results/summary_table.tsv", "results/benchmarks.tsv"} <= {p for p, v in declared.items() if v[1] == "Tables"}
    check_workflow_description(report, toy_run.config)


def test_report_check_fails_on_a_missing_figure_or_a_wrong_caption(tmp_path):
    """check_report on a hand-built report: complete, then without one figure, then with another caption."""
    declared = {p: v for p, v in declared_report_outputs().items() if not p.startswith(NOT_IN_ALL)}
    results, categories = {}, {}
    for i, (path, (caption_file, category)) in enumerate(declared.items()):
        (tmp_path / path).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / path).write_bytes(bytes([i]) * 10)
        mime = "image/png" if path.endswith(".png") else "text/tab-separated-values"
        results[path] = {"mime_type": mime, "caption": f"<p>{html.escape(caption_file.read_text())}</p>",
                         "data_uri": f"data:{mime};base64," + base64.b64encode(bytes([i]) * 10).decode()}
        categories.setdefault(category, {}).setdefault("Other", []).append(path)

    config = {"groups": {"g1": {}, "g2": {}}, "methods": {"pca": {}}}
    description = (f"<p>{html.escape((REPO / 'report/workflow.rst').read_text().split(chr(10) * 2)[0])}</p>"
                   "<p>This run: 2 dataset group(s) (g1, g2), 1 method(s) (pca), 1 index(es)</p>")

    def write(res, desc=description):
        page = tmp_path / "report.html"
        page.write_text(f'<script id="results">\nvar results = {json.dumps(res)};\n</script>\n'
                        f'<script id="categories">\nvar categories = {json.dumps(categories)};\n</script>\n'
                        f'<script>\nvar workflow_desc = {json.dumps(desc)};\n</script>\n')
        return page

    check_report(write(results), tmp_path)
    check_workflow_description(write(results), config)
    with pytest.raises(AssertionError):
        check_workflow_description(write(results, desc=""), config)
    with pytest.raises(AssertionError):
        check_workflow_description(write(results), dict(config, groups={"g1": {}}))
    first, second = list(results)[:2]
    with pytest.raises(AssertionError):
        check_report(write({p: e for p, e in results.items() if p != first}), tmp_path)
    with pytest.raises(AssertionError):
        check_report(write(dict(results, **{first: dict(results[first], caption=results[second]["caption"])})), tmp_path)
