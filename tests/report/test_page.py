"""The HTML page: self-contained, one cell per result, third-party text always escaped."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from matrix.report.page import page
from tests.report.test_render import MACHINE, WHEN, sample

HOSTILE = "bad | pipe <script>alert(1)</script>"


class Scan(HTMLParser):
    """Counts what a browser would build: cells, script elements, and external references."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str | None]] = []
        self.scripts = 0
        self.sources: list[str] = []  # src=: what a browser fetches
        self.links: list[str] = []  # href=: what a reader may follow

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "td" and "data-key" in found:
            self.cells.append(found)
        if tag == "script":
            self.scripts += 1
        self.sources += [str(found["src"])] if found.get("src") else []
        self.links += [str(found["href"])] if found.get("href") else []


# Links a reader may follow (nothing on the page loads them): release notes, hub models, PyPI packages.
LINK_PREFIXES = (
    "https://github.com/huggingface/transformers/releases/tag/v",
    "https://huggingface.co/",
    "https://pypi.org/project/",
)


def test_page_has_every_cell_and_nothing_external():
    matrix, rec = sample(search=True)
    scan = Scan()
    scan.feed(page(matrix, rec, WHEN))
    assert len(scan.cells) == len(matrix.all_cells())
    assert {cell["data-status"] for cell in scan.cells} >= {"pass", "fail", "env-failed", "timeout"}
    assert scan.sources == []  # nothing the browser would fetch
    assert scan.links and all(link.startswith(LINK_PREFIXES) for link in scan.links), scan.links
    assert scan.scripts == 2  # the JSON details and the page's own script, nothing injected


def test_hostile_messages_are_escaped_in_html_and_in_the_embedded_json():
    matrix, rec = sample()
    text = page(matrix, rec, WHEN)
    assert "<script>alert(1)</script>" not in text
    assert "</script>" not in text.split('<script type="application/json" id="cells">', 1)[1].split("</script>")[0]
    blob = re.search(r'<script type="application/json" id="cells">(.*?)</script>', text, re.S).group(1)
    details = json.loads(blob)
    hostile = dict(details["tf-4.50/hostile"])
    assert hostile["message"].startswith(HOSTILE)
    assert hostile["status"] == "fail" and hostile["phase"] == "load"


class Charts(HTMLParser):
    """The trend pictures as a browser would build them: each SVG's attributes, and the
    attributes and tooltip of every square and point in it."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[dict[str, str | None]] = []
        self.marks: list[dict[str, str | None]] = []  # rect / circle / budget line, with "svg" and "title"
        self.scripts = 0
        self.external: list[str] = []
        self._open: dict[str, str | None] | None = None
        self._title: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.scripts += tag == "script"
        self.external += [str(found["src"])] if found.get("src") else []
        if tag == "svg" and "data-chart" in found:  # a trend picture, not the release line
            self.svgs.append(found)
        elif tag in ("rect", "circle", "line") and ("data-run" in found or found.get("class") == "budget"):
            self._open = {**found, "tag": tag, "svg": str(len(self.svgs) - 1)}
            self.marks.append(self._open)
        elif tag == "title" and self._open is not None:
            self._title = []

    def handle_data(self, data: str) -> None:
        if self._title is not None:
            self._title.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "title" and self._open is not None and self._title is not None:
            self._open["title"] = "".join(self._title)
            self._title = None
        elif tag in ("rect", "circle", "line"):
            self._open = None


def history_runs() -> list[dict]:
    """Two history summaries over the sample's cells: the latency doubles, one cell gains a
    hostile status, and a hostile row appears only in the newer run."""
    older = {
        "run_id": "r0",
        "time": "2026-11-24T10:00:00+00:00",
        "machine": MACHINE,
        "envs": {"tf-4.40": "4.40.2", "tf-4.50": "4.50.3"},
        "cells": {
            "tf-4.40/qwen2-tiny": {"status": "pass", "latency_s": 0.012, "memory_mb": 30.5},
            "tf-4.50/qwen2-tiny": {"status": "pass", "latency_s": 0.011, "memory_mb": None},
            "tf-4.50/glm": {"status": "pass", "latency_s": [0.02, 0.03, 0.01], "memory_mb": {"median": 40.0}},
        },
    }
    newer = {
        "run_id": "r1",
        "time": WHEN,
        "machine": {**MACHINE, "hostname": "other"},
        "envs": {"tf-4.40": "4.40.2", "tf-4.50": "4.50.3"},
        "cells": {
            "tf-4.40/qwen2-tiny": {"status": "pass", "latency_s": 0.024, "memory_mb": 31.0},
            "tf-4.50/qwen2-tiny": {"status": HOSTILE, "latency_s": float("nan"), "memory_mb": True},
            "tf-4.50/glm": {"status": "fail", "latency_s": None, "memory_mb": 25.0},
            f"tf-4.50/{HOSTILE}": {"status": "fail", "latency_s": None, "memory_mb": 12.0},
        },
    }
    return [older, newer]


SPECS = {"qwen2-tiny": {"budgets": {"max_latency_s": 5.0, "max_memory_mb": 1024.0}}}


def test_each_env_alone_lines_nest_under_their_heading():
    matrix, rec = sample()
    text = page(matrix, rec, WHEN, since=["- a dash line with no heading above", "Compared with run r0:", "- fixed: x"])
    assert "<li>Each env alone:<ul><li>tf-4.40 (4.40.2) covers" in text
    assert "<li>a dash line with no heading above</li><li>Compared with run r0:<ul><li>fixed: x</li></ul></li>" in text


def test_no_history_no_trends():
    matrix, rec = sample()
    assert "Trends" not in page(matrix, rec, WHEN)
    assert "data-chart" not in page(matrix, rec, WHEN, runs=[{"run_id": "r0", "cells": {}}])


def test_trend_pictures_carry_the_history_numbers_and_escape_its_text():
    matrix, rec = sample()
    runs = history_runs()
    text = page(matrix, rec, WHEN, runs=runs, specs=SPECS)
    scan = Charts()
    scan.feed(text)
    assert scan.scripts == 2 and scan.external == []
    assert "<script>alert(1)</script>" not in text
    kinds = [(svg["data-chart"], svg.get("data-env") or svg.get("data-stem")) for svg in scan.svgs]
    assert kinds == [
        ("status", "tf-4.40"),
        ("status", "tf-4.50"),
        ("latency_s", "qwen2-tiny"),
        ("memory_mb", "qwen2-tiny"),
        ("latency_s", "glm"),
        ("memory_mb", "glm"),
        ("latency_s", HOSTILE),
        ("memory_mb", HOSTILE),
    ]
    budgets = {(svg["data-chart"], svg["data-stem"]): svg["data-budget"] for svg in scan.svgs if svg.get("data-stem")}
    assert budgets[("latency_s", "qwen2-tiny")] == "5.0" and budgets[("memory_mb", "qwen2-tiny")] == "1024.0"
    assert budgets[("latency_s", "glm")] == ""  # no spec, no budget line
    assert [mark["data-value"] for mark in scan.marks if mark["tag"] == "line"] == ["5.0", "1024.0"]

    squares = {(m["data-run"], m["data-cell"]): m.get("data-status") for m in scan.marks if m["tag"] == "rect"}
    assert squares[("r1", "tf-4.50/qwen2-tiny")] == HOSTILE  # escaped in, read back literally
    assert squares[("r0", f"tf-4.50/{HOSTILE}")] is None  # not in that run: an outlined square
    assert {key: status for key, status in squares.items() if status} == {
        (entry["run_id"], key): cell["status"] for entry in runs for key, cell in entry["cells"].items()
    }
    hostile_square = next(m for m in scan.marks if m.get("data-status") == HOSTILE)
    assert hostile_square["fill"] == "#ffffff" and HOSTILE in str(hostile_square["title"])

    stems = {str(index): svg.get("data-stem") for index, svg in enumerate(scan.svgs)}
    charts = {str(index): svg["data-chart"] for index, svg in enumerate(scan.svgs)}
    points = {
        (m["data-run"], f"{m['data-env']}/{stems[str(m['svg'])]}", charts[str(m["svg"])]): float(str(m["data-value"]))
        for m in scan.marks
        if m["tag"] == "circle"
    }
    assert points == {
        ("r0", "tf-4.40/qwen2-tiny", "latency_s"): 0.012,
        ("r0", "tf-4.40/qwen2-tiny", "memory_mb"): 30.5,
        ("r0", "tf-4.50/qwen2-tiny", "latency_s"): 0.011,
        ("r0", "tf-4.50/glm", "latency_s"): 0.02,  # the median of the samples
        ("r0", "tf-4.50/glm", "memory_mb"): 40.0,
        ("r1", "tf-4.40/qwen2-tiny", "latency_s"): 0.024,
        ("r1", "tf-4.40/qwen2-tiny", "memory_mb"): 31.0,
        ("r1", "tf-4.50/glm", "memory_mb"): 25.0,  # NaN and True are no numbers: not drawn
        ("r1", f"tf-4.50/{HOSTILE}", "memory_mb"): 12.0,
    }
    assert "They come from 2 machines" in text
