"""results/index.html in a real headless Chromium (Debian's, driven by playwright).

tests/report/test_page.py reads the page as text; this reads it as a browser builds it: the DOM,
the script's filters and details panel, what it fetches, what it logs, and what it paints.
Playwright's own browser download is never used (its CDN is not reachable from every box).
"""

from __future__ import annotations

import json
import re
import shutil
import struct
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, ElementHandle, Page, sync_playwright

from matrix import history
from matrix.config import load as load_config
from matrix.diagnosis import diagnose, load_known_breaks
from matrix.judge.drift import judge_outputs, with_judgements
from matrix.recommend import recommend
from matrix.report.charts import RUNS_SHOWN
from matrix.report.page import page
from matrix.results.aggregate import aggregate
from matrix.results.collect import Run
from probes.record import cell_stem
from tests.helpers import ROOT, make_cell

PUBLISHED_PAGE = ROOT / "results" / "index.html"
PUBLISHED_DATA = ROOT / "results" / "matrix.json"
PUBLISHED_HISTORY = ROOT / "results"  # history.jsonl, read by matrix/history.py's own reader
MATRIX = "table:not(#blockers)"  # the matrix, not the upgrade blockers' table (a page built before it has no ids)
INSTALL_HINT = "install Debian's chromium: apt-get install chromium; .ci/run does this"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-dev-shm-usage"]
WHEN = "2026-11-25T12:00:00+00:00"

# Every payload sets the same marker and opens a dialog if it ever runs; an injected <img>
# would also fetch its src, which the request log catches.
HOSTILE_MODEL = "evil\"'<script>window.__pwned='model';alert(1)</script><img src=x onerror=\"window.__pwned='img'\">"
HOSTILE_MESSAGE = (
    "'GLM' object has no attribute '_extract_past_from_model_output' "
    "</script><script>window.__pwned='message';alert(2)</script>"
    "<img src=x onerror=\"window.__pwned='onerror';alert(3)\"> \"double\" 'single' & done"
)
HOSTILE_UNKNOWN = "<script>window.__pwned='unknown'</script> \"never\" seen"
HOSTILE_REASON = "<img src=y onerror=alert(4)> 'q' \"qq\""


@dataclass
class Visit:
    """One page load: the page, and everything it asked for, logged, threw or popped up."""

    page: Page
    url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def assert_quiet(self) -> None:
        """Nothing fetched but the file itself, nothing logged as an error, nothing thrown, no dialog."""
        assert self.requests == [self.url], f"the page fetched more than itself: {self.requests}"
        assert self.console_errors == [], self.console_errors
        assert self.page_errors == [], self.page_errors
        assert self.dialogs == [], self.dialogs

    def cell(self, key: str) -> ElementHandle:
        """The table cell with this exact data-key (no CSS selector quoting for hostile keys)."""
        handle = self.page.evaluate_handle(
            "key => [...document.querySelectorAll('td[data-key]')].find(td => td.dataset.key === key) || null", key
        ).as_element()
        assert handle is not None, f"no cell with data-key {key!r}"
        return handle

    def details(self) -> dict[str, str]:
        """The details panel as label -> text, in the order shown."""
        assert self.page.locator("#details").is_visible(), "the details panel is hidden"
        pairs = self.page.eval_on_selector_all(
            "#details > div", "rows => rows.map(row => [row.children[0].textContent, row.children[1].textContent])"
        )
        return {label.removesuffix(": "): text for label, text in pairs}

    def shown_rows(self) -> list[str]:
        """data-model of every table row the browser actually displays."""
        rows = self.page.locator(f"{MATRIX} tbody tr")
        return [str(row.get_attribute("data-model")) for row in rows.all() if row.is_visible()]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One headless Chromium for the module (a launch costs about a second)."""
    executable = shutil.which("chromium")
    if executable is None:
        pytest.fail(f"no `chromium` on PATH: {INSTALL_HINT}", pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def visit(browser: Browser, path: Path, width: int = 1280, height: int = 720) -> Visit:
    """Load a page from disk in a fresh context, letting through only the file itself."""
    context = browser.new_context(viewport={"width": width, "height": height})
    tab = context.new_page()
    seen = Visit(tab, path.resolve().as_uri())

    def only_the_file(route: Any) -> None:
        seen.requests.append(route.request.url)
        if route.request.url == seen.url:
            route.continue_()
        else:
            route.abort()

    def on_console(message: Any) -> None:
        if message.type == "error":
            seen.console_errors.append(message.text)

    def on_dialog(dialog: Any) -> None:
        seen.dialogs.append(f"{dialog.type}: {dialog.message}")
        dialog.dismiss()

    tab.route("**/*", only_the_file)
    tab.on("console", on_console)
    tab.on("pageerror", lambda error: seen.page_errors.append(str(error)))
    tab.on("dialog", on_dialog)
    tab.goto(seen.url, wait_until="load")
    return seen


@pytest.fixture
def published(browser: Browser) -> Iterator[tuple[Visit, dict[str, Any]]]:
    """The committed page in the browser, with the same run's matrix.json."""
    seen = visit(browser, PUBLISHED_PAGE)
    yield seen, json.loads(PUBLISHED_DATA.read_text(encoding="utf-8"))
    seen.page.context.close()


def row_labels(data: dict[str, Any]) -> list[str]:
    """Table rows of matrix.json: each model, then each of its shim variants."""
    labels: list[str] = []
    for model in data["models"]:
        variants = sorted({cell["variant"] for cell in data["cells"] if cell["model"] == model})
        labels += [cell_stem(model, variant) for variant in variants]
    return labels


def test_published_page_shows_every_cell_with_its_status_and_fetches_nothing(published):
    seen, data = published
    envs = [env["name"] for env in data["envs"]]
    labels = row_labels(data)
    assert seen.page.locator(f"{MATRIX} tbody tr").count() == len(labels)
    assert seen.page.locator(f"{MATRIX} tbody td[data-key], {MATRIX} tbody td.none").count() == len(labels) * len(envs)
    keyed = seen.page.eval_on_selector_all(
        f"{MATRIX} tbody td[data-key]",
        "tds => tds.map(td => [td.dataset.key, td.closest('tr').dataset.model, td.dataset.status])",
    )
    shown: dict[tuple[str, str], str] = {}
    for key, label, status in keyed:
        assert key.endswith("/" + label), f"cell key {key!r} is not in its row {label!r}"
        shown[(key.removesuffix("/" + label), label)] = status
    expected = {(cell["env"], cell_stem(cell["model"], cell["variant"])): cell["status"] for cell in data["cells"]}
    assert shown == expected
    assert "fail" in shown.values(), "the published run has no failing cell to show"
    seen.assert_quiet()


def own_texts(tab: Page, selector: str) -> list[str]:
    """The text of every list item under `selector`, nested ones too, in document order,
    without the text of the lists nested in it."""
    return tab.eval_on_selector(
        selector,
        "ul => [...ul.querySelectorAll('li')].map(li => [...li.childNodes]"
        ".filter(node => node.nodeType === Node.TEXT_NODE).map(node => node.textContent).join(''))",
    )


FIRST_SCREEN = (1400, 900)
SCREENSHOT = Path("/tmp/first-screen.png")


def test_the_first_screen_is_the_headline_and_the_whole_matrix(browser):
    """At 1400x900 the headline and every row of the matrix (its tally too) are on screen
    before any scrolling; the recommendation's full summary waits in the details at the end."""
    seen = visit(browser, PUBLISHED_PAGE, *FIRST_SCREEN)
    try:
        data = json.loads(PUBLISHED_DATA.read_text(encoding="utf-8"))
        tab = seen.page
        pin = data["recommendation"]["pin"]["transformers"]
        assert tab.locator("h1#headline").text_content() == f"Pin transformers=={pin}"
        width, height = FIRST_SCREEN
        for selector in ("h1#headline", f"{MATRIX} thead", f"{MATRIX} tbody tr:last-child", f"{MATRIX} tfoot"):
            box = tab.locator(selector).bounding_box()
            assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= height, (selector, box)
            assert box["x"] + box["width"] <= width, f"{selector} runs off the right edge: {box}"
        tallies = tab.locator(f"{MATRIX} tfoot td.tally").all_text_contents()
        assert len(tallies) == len(data["envs"]), tallies
        assert all(re.fullmatch(r"\d+/\d+ models( \(\d+ with shim\))?", tally) for tally in tallies), tallies
        statuses = {cell["status"] for cell in data["cells"]}
        assert tab.locator("#legend .key").count() == len(statuses)  # only the statuses that occur
        assert own_texts(tab, "#summary") == [line.removeprefix("- ") for line in data["recommendation"]["summary"]]
        summary_box = tab.locator("#summary").bounding_box()
        assert summary_box and summary_box["y"] > tab.locator("#release-line").bounding_box()["y"]
        tab.screenshot(path=str(SCREENSHOT))
        _, _, pixels = decode_png(SCREENSHOT.read_bytes())
        print(f"\nfirst screen {SCREENSHOT}: {width}x{height}, {len(set(pixels))} distinct colours")
        seen.assert_quiet()
    finally:
        seen.page.context.close()


def page_stretches(tab: Page) -> dict[str, list[tuple[str, str, str, str, str]]]:
    """Each release-line row's stretches as the browser built them: first, last, kind, diagnosis, edge."""
    found = tab.eval_on_selector_all(
        "#release-line g.line-row",
        "rows => rows.map(g => [g.dataset.row, [...g.querySelectorAll('rect.stretch')].map(r =>"
        " [r.dataset.first, r.dataset.last, r.dataset.kind, r.dataset.diagnosis, r.dataset.exact])])",
    )
    return {row: [tuple(stretch) for stretch in stretches] for row, stretches in found}


def test_the_release_line_matches_the_bisect_report_stretch_by_stretch(published):
    """Every window of every published bisect report is one stretch (its ends, works or breaks
    with its diagnosis, its edge's exactness); whatever lies between two windows is unknown."""
    seen, data = published
    drawn = page_stretches(seen.page)
    assert set(drawn) == set(row_labels(data))
    reports = [
        json.loads(path.read_text(encoding="utf-8")) for path in sorted((ROOT / "results" / "bisect").glob("*.json"))
    ]
    assert reports, "no published bisect report"
    for report in reports:
        for variant, windows in {"": report["windows"], **(report.get("variants") or {})}.items():
            row = cell_stem(report["model"], variant)
            stretches = drawn[row]
            starts = {stretch[0]: stretch for stretch in stretches}
            for number, window in enumerate(windows):
                kind = ("works-with-shim" if variant else "works") if window["outcome"] == "pass" else "breaks"
                edge = "" if number == 0 and window["from"] == stretches[0][0] else str(window["exact_from"]).lower()
                expected = (window["from"], window["to"], kind, (window.get("diagnosis") or {}).get("id", ""), edge)
                assert starts.get(window["from"]) == expected, f"{row}: {window['from']}-{window['to']}"
            windowed = {window["from"] for window in windows}
            others = [stretch for stretch in stretches if stretch[0] not in windowed]
            assert all(stretch[2] == "unknown" for stretch in others), f"{row}: {others}"
            assert stretches[0][0] == windows[0]["from"] and stretches[-1][1] == windows[-1]["to"]
            assert len(stretches) == len(windows) + len(others)
    seen.assert_quiet()


def test_focusing_a_stretch_shows_its_window_error_and_fix(published):
    seen, _ = published
    tab = seen.page
    stretch = tab.locator('#release-line rect.stretch[data-kind="breaks"]').first
    title = stretch.locator("title").text_content() or ""
    assert f"{stretch.get_attribute('data-first')}–{stretch.get_attribute('data-last')}" in title
    assert "Error in " in title and "fix: " in title, title
    assert not tab.locator("#stretch").is_visible()
    stretch.focus()
    assert tab.locator("#stretch").is_visible() and tab.locator("#stretch").text_content() == title
    links = tab.eval_on_selector_all("#breaks a", "links => links.map(a => [a.textContent, a.href])")
    assert links and all(
        href == f"https://github.com/huggingface/transformers/releases/tag/v{text}" for text, href in links
    )
    seen.assert_quiet()


def test_clicking_a_failing_cell_shows_phase_exception_and_fix(published):
    seen, data = published
    failing = next(
        (cell for cell in data["cells"] if cell["status"] == "fail" and cell["diagnosis"] and cell["error"]), None
    )
    assert failing is not None, "the published run has no diagnosed failing cell"
    stem = cell_stem(failing["model"], failing["variant"])
    assert not seen.page.locator("#details").is_visible()
    seen.cell(f"{failing['env']}/{stem}").click()
    panel = seen.details()
    assert panel["cell"] == f"{stem} on {failing['env']}"
    assert panel["status"] == "fail"
    assert panel["phase"] == failing["phase"]
    assert panel["exception"] == failing["error"]["type"]
    assert panel["known break"].startswith(failing["diagnosis"]["id"])
    assert panel["fix"] == "; ".join(failing["diagnosis"]["fixes"])
    seen.assert_quiet()


def test_status_and_model_filters_hide_the_right_rows(published):
    seen, data = published
    labels = row_labels(data)
    statuses = {label: set() for label in labels}
    for cell in data["cells"]:
        statuses[cell_stem(cell["model"], cell["variant"])].add(cell["status"])
    assert seen.shown_rows() == labels

    seen.page.select_option("#status", "fail")
    failing_rows = [label for label in labels if "fail" in statuses[label]]
    assert failing_rows and len(failing_rows) < len(labels), "the published run needs failing and clean rows"
    assert seen.shown_rows() == failing_rows
    dimmed = seen.page.eval_on_selector_all(
        f"{MATRIX} tbody tr td.dim", "tds => tds.filter(td => td.checkVisibility()).map(td => td.dataset.status)"
    )
    others_in_shown_rows = [
        cell["status"]
        for cell in data["cells"]
        if cell["status"] != "fail" and cell_stem(cell["model"], cell["variant"]) in failing_rows
    ]
    assert sorted(dimmed) == sorted(others_in_shown_rows)  # a shown row's other cells are faded

    seen.page.select_option("#status", "")
    query = max(data["models"], key=lambda model: sum(label.startswith(model) for label in labels))
    seen.page.fill("#model", query.upper())  # the filter ignores case
    by_name = [label for label in labels if query in label]
    assert seen.shown_rows() == by_name and len(by_name) < len(labels)

    seen.page.select_option("#status", "pass")
    assert seen.shown_rows() == [label for label in by_name if "pass" in statuses[label]]

    seen.page.fill("#model", "")
    seen.page.select_option("#status", "")
    assert seen.shown_rows() == labels
    seen.assert_quiet()


def hostile_page(tmp_path: Path) -> Path:
    """A page built the way `python -m matrix report` builds one, from cells full of markup."""
    gen = {"generate_median_s": 0.02}
    envs = {
        "tf-4.40": {"packages": {"transformers": "4.40.2", "torch": "2.13.0+cpu"}},
        "tf-4.50": {"packages": {"transformers": "4.50.3", "torch": "2.13.0+cpu"}},
    }
    error = {"type": "AttributeError", "message": HOSTILE_MESSAGE, "traceback": HOSTILE_MESSAGE}
    hostile = [
        make_cell("tf-4.40", "evil", "pass", metrics=gen),
        make_cell("tf-4.50", "evil", "fail", phase="generate", error=error, log=HOSTILE_MODEL + ".log"),
    ]
    cells = hostile + [
        make_cell("tf-4.40", "plain", "timeout", reason=HOSTILE_REASON),
        make_cell("tf-4.50", "plain", "fail", phase="load", error={"type": "OSError", "message": HOSTILE_UNKNOWN}),
    ]
    run = Run(tmp_path / "runs" / "hostile", envs, cells, ["evil", "plain"])
    matrix = aggregate(run)
    matrix = with_judgements(matrix, judge_outputs(matrix, run.model_specs, run.settings))
    # CellResult refuses such a name (probes/record.py SAFE_PART; the judge re-makes cells, so it
    # checks again); the page must not rely on that check, so the name is set after judging.
    for cell in matrix.all_cells():
        if cell.model == "evil":
            cell.model = HOSTILE_MODEL
    matrix.rows = [replace(row, model=HOSTILE_MODEL) if row.model == "evil" else row for row in matrix.rows]
    matrix.models = [HOSTILE_MODEL if model == "evil" else model for model in matrix.models]
    unknown = diagnose(matrix, load_known_breaks())
    assert unknown, "the OSError cell should stay unrecognised, so its message is listed too"
    runs = [  # one history line whose every text is hostile, the status too
        {
            "run_id": HOSTILE_UNKNOWN,
            "time": HOSTILE_REASON,
            "machine": {"hostname": HOSTILE_MODEL},
            "envs": {"tf-4.40": HOSTILE_REASON},
            "cells": {
                f"tf-4.40/{HOSTILE_MODEL}": {"status": "pass", "latency_s": 0.02, "memory_mb": 30.0},
                f"tf-4.50/{HOSTILE_MODEL}": {"status": HOSTILE_MESSAGE, "latency_s": None, "memory_mb": 31.0},
            },
        }
    ]
    specs = {HOSTILE_MODEL: {"budgets": {"max_latency_s": 0.5, "max_memory_mb": HOSTILE_REASON}}}
    path = tmp_path / "index.html"
    text = page(matrix, recommend(matrix), WHEN, unknown, ["- " + HOSTILE_UNKNOWN], runs, specs)
    path.write_text(text, encoding="utf-8")
    return path


def test_hostile_text_shows_literally_and_never_runs(browser, tmp_path):
    seen = visit(browser, hostile_page(tmp_path))
    try:
        tab = seen.page
        assert tab.locator(f"{MATRIX} tbody th").all_text_contents() == [HOSTILE_MODEL, "plain"]
        assert tab.locator(f"{MATRIX} tbody tr").first.get_attribute("data-model") == HOSTILE_MODEL
        assert seen.cell("tf-4.40/plain").text_content() == f"timeout {HOSTILE_REASON}"
        assert HOSTILE_UNKNOWN in tab.locator("body").inner_text()

        seen.cell(f"tf-4.50/{HOSTILE_MODEL}").click()
        panel = seen.details()
        assert panel["cell"] == f"{HOSTILE_MODEL} on tf-4.50"
        assert panel["message"] == HOSTILE_MESSAGE
        assert panel["traceback"] == HOSTILE_MESSAGE
        assert panel["exception"] == "AttributeError" and panel["fix"].startswith("pin transformers")

        titles = tab.eval_on_selector_all("svg [data-run] > title", "titles => titles.map(t => t.textContent)")
        about = f"run {HOSTILE_UNKNOWN}, {HOSTILE_REASON}, on {HOSTILE_MODEL}"
        assert f"tf-4.40/{HOSTILE_MODEL}, {about}, transformers {HOSTILE_REASON}: pass" in titles
        assert f"tf-4.40/{HOSTILE_MODEL}, {about}, transformers {HOSTILE_REASON}: latency 0.02 s (pass)" in titles
        assert f"tf-4.50/{HOSTILE_MODEL}, {about}: {HOSTILE_MESSAGE}" in titles  # the history names no version
        odd = tab.eval_on_selector_all(
            "svg rect[data-status]",
            "rects => rects.filter(r => r.dataset.status !== 'pass')"
            ".map(r => [r.dataset.status, getComputedStyle(r).fill])",
        )
        assert odd == [[HOSTILE_MESSAGE, "rgb(255, 255, 255)"]]  # an unknown status is drawn white
        assert tab.locator("figcaption").first.text_content() == f"tf-4.40: transformers {HOSTILE_REASON}"
        assert tab.locator("#trends h4").all_text_contents() == [HOSTILE_MODEL]
        budgets = tab.eval_on_selector_all("svg[data-stem]", "svgs => svgs.map(svg => svg.dataset.budget)")
        assert budgets == ["0.5", ""]  # a budget that is no number draws no line

        assert tab.evaluate("typeof window.__pwned") == "undefined"
        assert tab.evaluate("document.scripts.length") == 2  # the JSON details and the page's own script
        assert tab.locator("img").count() == 0
        seen.assert_quiet()
    finally:
        tab.context.close()


def test_screenshot_is_painted_with_status_colours(published, tmp_path):
    seen, _ = published
    shot = tmp_path / "index.png"
    seen.page.screenshot(path=str(shot), full_page=True)
    width, height, pixels = decode_png(shot.read_bytes())
    colours = Counter(pixels)
    passing, failing = (painted_colour(seen.page, status) for status in ("pass", "fail"))
    background_share = colours.most_common(1)[0][1] / len(pixels)
    print(
        f"\nscreenshot {shot}: {width}x{height}, {shot.stat().st_size} bytes, {len(colours)} distinct colours;"
        f" pass {passing} on {colours[passing]} px, fail {failing} on {colours[failing]} px,"
        f" background {background_share:.0%}"
    )
    assert len(colours) >= 16, f"only {len(colours)} colours: a blank page?"
    assert background_share < 0.98
    assert passing[1] - max(passing[0], passing[2]) >= 30, f"pass cells are not green-ish: {passing}"
    assert failing[0] - max(failing[1], failing[2]) >= 30, f"fail cells are not red-ish: {failing}"
    cell_area = 500  # a table cell is thousands of pixels; text anti-aliasing is not
    assert colours[passing] >= cell_area and colours[failing] >= cell_area, "pass or fail cells not painted"
    seen.assert_quiet()


def painted_colour(tab: Page, status: str) -> tuple[int, int, int]:
    """The computed background of the first cell with this status, as RGB."""
    css = tab.locator(f'td[data-status="{status}"]').first.evaluate("td => getComputedStyle(td).backgroundColor")
    assert css.startswith("rgb(") and css.endswith(")"), f"unexpected colour {css!r}"
    red, green, blue = (int(part) for part in css[4:-1].split(","))
    return red, green, blue


def decode_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Width, height and RGB pixels of an 8-bit, non-interlaced RGB or RGBA PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset, header, compressed = 8, b"", bytearray()
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    channels = {2: 3, 6: 4}.get(colour_type)
    assert depth == 8 and channels and not interlace, f"unsupported PNG: depth {depth}, type {colour_type}"
    raw = zlib.decompress(bytes(compressed))
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    for y in range(height):
        start = y * (stride + 1)
        line = unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, channels)
        pixels += zip(line[0::channels], line[1::channels], line[2::channels], strict=True)
        previous = line
    return width, height, pixels


def unfilter(kind: int, line: bytearray, above: bytearray, step: int) -> bytearray:
    """Undo one scanline's PNG filter (None, Sub, Up, Average, Paeth) in place.

    One loop per filter with the first pixel apart (its left neighbours are zero): a full-page
    screenshot is about three million bytes, so this loop is most of the test's time.
    """
    if kind == 0:
        return line
    if kind == 2:
        return bytearray((a + b) & 0xFF for a, b in zip(line, above, strict=True))
    if kind == 1:
        for i in range(step, len(line)):
            line[i] = (line[i] + line[i - step]) & 0xFF
    elif kind == 3:
        for i in range(step):
            line[i] = (line[i] + (above[i] >> 1)) & 0xFF
        for i in range(step, len(line)):
            line[i] = (line[i] + ((line[i - step] + above[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(step):
            line[i] = (line[i] + above[i]) & 0xFF  # Paeth with zero left neighbours picks the one above
        for i in range(step, len(line)):
            line[i] = (line[i] + paeth(line[i - step], above[i], above[i - step])) & 0xFF
    else:
        raise AssertionError(f"bad PNG filter type {kind}")
    return line


def paeth(left: int, above: int, upper_left: int) -> int:
    """The PNG Paeth predictor: whichever neighbour is closest to left + above - upper_left."""
    from_left, from_above = abs(above - upper_left), abs(left - upper_left)  # |estimate - left|, |estimate - above|
    from_upper_left = abs(left + above - 2 * upper_left)
    if from_left <= from_above and from_left <= from_upper_left:
        return left
    return above if from_above <= from_upper_left else upper_left


def trend_page(tmp_path: Path) -> tuple[Path, list[dict[str, Any]], dict[str, dict[str, Any]]]:
    """A page built as `python -m matrix report` builds one: the history from the published
    results/history.jsonl, the budgets from matrix.toml, the table from the newest history line.
    Returns the page, the runs its pictures should show, and the model specs."""
    warnings: list[str] = []
    entries = history.load(PUBLISHED_HISTORY, warnings)
    assert len(entries) >= 2 and not warnings, f"the published history needs two readable runs: {warnings}"
    newest = entries[-1]
    envs = {
        env: {"packages": {"transformers": version, "torch": "2.13.0+cpu"}} for env, version in newest["envs"].items()
    }
    cells = []
    for key, found in newest["cells"].items():
        env, _, stem = key.partition("/")
        model, _, variant = stem.partition("+")
        cells.append(make_cell(env, model, found["status"], variant=variant))
    run = Run(tmp_path / "runs" / newest["run_id"], envs, cells, list(dict.fromkeys(cell.model for cell in cells)))
    matrix = aggregate(run)
    specs = {model.name: {"budgets": model.budgets} for model in load_config(ROOT / "matrix.toml").models}
    path = tmp_path / "trends.html"
    path.write_text(page(matrix, recommend(matrix), WHEN, runs=entries, specs=specs), encoding="utf-8")
    return path, entries[-RUNS_SHOWN:], specs


@pytest.fixture
def trends(browser: Browser, tmp_path: Path) -> Iterator[tuple[Visit, list[dict[str, Any]], dict[str, dict[str, Any]]]]:
    path, runs, specs = trend_page(tmp_path)
    seen = visit(browser, path)
    yield seen, runs, specs
    seen.page.context.close()


BUDGET_KEYS = {"latency_s": "max_latency_s", "memory_mb": "max_memory_mb"}


def test_trend_pictures_are_drawn_and_carry_the_history_numbers(trends):
    seen, runs, specs = trends
    tab = seen.page
    statuses = {(entry["run_id"], key): cell["status"] for entry in runs for key, cell in entry["cells"].items()}
    squares = tab.eval_on_selector_all(
        'svg[data-chart="status"] rect[data-run]',
        "rects => rects.map(r => [r.dataset.run, r.dataset.cell, r.dataset.status ?? null, r.textContent])",
    )
    assert {(run, cell): status for run, cell, status, _ in squares if status is not None} == statuses
    cells = {key for _, key in statuses}
    assert len(squares) == len(cells) * len(runs)  # one square per run for each cell, outlined where missing
    assert all(title.startswith(f"{cell}, run {run}, ") for run, cell, _, title in squares)
    assert tab.locator('svg[data-chart="status"]').count() == len({key.partition("/")[0] for key in cells})

    values = {
        (metric, key, entry["run_id"]): value
        for entry in runs
        for key, cell in entry["cells"].items()
        for metric in BUDGET_KEYS
        if isinstance(value := cell.get(metric), int | float)
    }
    points = tab.eval_on_selector_all(
        "svg[data-stem] circle",
        "points => points.map(c => [c.closest('svg').dataset.chart,"
        " `${c.dataset.env}/${c.closest('svg').dataset.stem}`, c.dataset.run,"
        " Number(c.dataset.value), c.getAttribute('cy')])",
    )
    assert {(metric, key, run): value for metric, key, run, value, _ in points} == values
    assert len(points) == len(values)

    charts = tab.eval_on_selector_all(
        "svg[data-stem]",
        "svgs => svgs.map(svg => [svg.dataset.chart, svg.dataset.stem, svg.dataset.budget,"
        " Number(svg.querySelector('line.budget').dataset.value),"
        " Number(svg.querySelector('line.budget').getAttribute('y1'))])",
    )
    assert {(metric, stem) for metric, stem, *_ in charts} == {
        (metric, key.partition("/")[2]) for metric, key, _ in values
    }
    for metric, stem, budget, line_value, line_y in charts:
        limit = specs[stem.partition("+")[0]]["budgets"][BUDGET_KEYS[metric]]
        assert float(budget) == line_value == limit
        drawn = [(value, float(cy)) for m, key, _, value, cy in points if m == metric and key.endswith("/" + stem)]
        assert all(y > line_y for value, y in drawn if value < limit), (
            f"{metric} of {stem}: a point under budget drawn above it"
        )
    for svg in tab.locator("#trends svg").all():
        box = svg.bounding_box()
        assert box and box["width"] > 150 and box["height"] > 60 and svg.is_visible()
    seen.assert_quiet()


def test_trend_screenshot_paints_statuses_env_lines_and_budgets(trends, tmp_path):
    seen, runs, _ = trends
    tab = seen.page
    shot = tmp_path / "trends.png"
    tab.locator("#trends").screenshot(path=str(shot))
    width, height, pixels = decode_png(shot.read_bytes())
    colours = Counter(pixels)
    strip = tab.locator('svg[data-chart="status"] rect[data-status="pass"]').first
    passing = rgb(strip.evaluate("r => getComputedStyle(r).fill"))
    env_colours = [
        rgb(c)
        for c in tab.eval_on_selector_all(
            "#trends svg path[data-env]", "ps => [...new Set(ps.map(p => getComputedStyle(p).stroke))]"
        )
    ]
    budget = rgb(tab.locator("line.budget").first.evaluate("line => getComputedStyle(line).stroke"))
    print(
        f"\ntrend screenshot {shot}: {width}x{height}, {len(runs)} runs; pass squares {colours[passing]} px,"
        f" env colours {[colours[c] for c in env_colours]} px, budget lines {colours[budget]} px"
    )
    assert colours[passing] >= 16 * 16 * len(runs), "status squares not painted"
    assert env_colours and all(colours[colour] >= 50 for colour in env_colours), "an env's line or points not painted"
    assert colours[budget] >= 200, "budget lines not painted"
    seen.assert_quiet()


def rgb(css: str) -> tuple[int, int, int]:
    assert css.startswith("rgb(") and css.endswith(")"), f"unexpected colour {css!r}"
    red, green, blue = (int(part) for part in css[4:-1].split(","))
    return red, green, blue


def test_each_env_alone_lines_render_as_a_list_nested_under_their_heading(trends):
    seen, runs, _ = trends
    tab = seen.page
    top = "#summary > li"
    headings = tab.eval_on_selector_all(top, "items => items.map(li => li.firstChild.textContent)")
    assert "Each env alone:" in headings
    nested = tab.locator(f"{top}:has-text('Each env alone:') > ul > li").all_text_contents()
    assert len(nested) == len(runs[-1]["envs"]) and all(" covers " in line for line in nested), nested
    assert not any(heading.startswith(tuple(runs[-1]["envs"])) for heading in headings), "an env line is not nested"
    seen.assert_quiet()
