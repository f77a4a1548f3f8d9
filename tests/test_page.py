"""The HTML page: self-contained, one cell per result, third-party text always escaped."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser

from matrix.page import page
from tests.test_render import WHEN, sample

HOSTILE = "bad | pipe <script>alert(1)</script>"


class Scan(HTMLParser):
    """Counts what a browser would build: cells, script elements, and external references."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[dict[str, str | None]] = []
        self.scripts = 0
        self.external: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "td" and "data-key" in found:
            self.cells.append(found)
        if tag == "script":
            self.scripts += 1
        for name in ("src", "href"):
            if found.get(name):
                self.external.append(str(found[name]))


def test_page_has_every_cell_and_nothing_external():
    matrix, rec = sample()
    scan = Scan()
    scan.feed(page(matrix, rec, WHEN))
    assert len(scan.cells) == len(matrix.all_cells())
    assert {cell["data-status"] for cell in scan.cells} >= {"pass", "fail", "env-failed", "timeout"}
    assert scan.external == []
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
