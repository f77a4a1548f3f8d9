"""The release line as one SVG: a row per model and shim variant, releases along the axis.

Drawn once and used twice: inline on the page and as `results/release-line.svg` beside
COMPATIBILITY.md (GitHub shows an SVG file an `![...]()` names). So it carries its own
style (static/release-line.css) and legend, fetches nothing, and every text is escaped.
Each stretch is focusable and titled (window, verdict, error, fix, how sure the edge is);
the run's envs and the recommended pin are drawn across the rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from importlib import resources

from packaging.version import Version

from matrix.recommend import Recommendation
from matrix.report.line_stretches import ASSUMED, BREAKS, KIND_WORDS, SHIM, UNKNOWN, WORKS, LineRow, axis, line_rows
from matrix.results.aggregate import Matrix

FILLS = {WORKS: "#4caf50", SHIM: "#b5d33d", BREAKS: "#e05d44", ASSUMED: "#a5d6a7", UNKNOWN: "#d6d6d6"}
PIN_COLOUR, ENV_COLOUR = "#1f4fbf", "#444"
_CHAR_W, _ROW_H, _BAR_H, _TOP, _AXIS_W = 6.4, 24, 16, 40, 900


def release_line_picture(matrix: Matrix, rec: Recommendation) -> str:
    """The release line of a run (empty without releases to draw): the same for the page and the file."""
    releases = axis(matrix, rec)
    envs = [(env.name, str(env.version)) for env in matrix.envs if env.built and env.version is not None]
    pin = (rec.pin() or {}).get("transformers")
    return release_line_svg(line_rows(matrix, rec, releases), releases, envs, str(pin) if pin else None)


def release_line_svg(
    rows: Sequence[LineRow], releases: Sequence[str], envs: Sequence[tuple[str, str]], pin: str | None
) -> str:
    """The picture: `envs` are (name, version) of the run's built envs, `pin` the recommended release."""
    if not rows or not releases:
        return ""
    column = max(3, min(14, _AXIS_W // len(releases)))
    left = int(min(260, max(len(row.label) for row in rows) * _CHAR_W + 16))
    width = left + column * len(releases) + 16
    index = {release: number for number, release in enumerate(releases)}
    body_h = len(rows) * _ROW_H
    present = sorted({s.kind for row in rows for s in row.stretches}, key=list(FILLS).index)
    height = _TOP + body_h + 30 + 22 * ((len(present) + 3) // 4 + 1)
    style = resources.files("matrix.report").joinpath("static/release-line.css").read_text(encoding="utf-8")
    label = f"where each model works from transformers {releases[0]} to {releases[-1]} ({len(releases)} releases)"
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" id="release-line" class="release-line" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}"'
        f' data-releases="{len(releases)}"><title>{escape(label)}</title><style>{style}</style>',
        f'<rect width="{width}" height="{height}" fill="#fff"/>',
    ]
    parts += _minor_groups(releases, left, column, body_h)
    for number, row in enumerate(rows):
        parts += _row(row, number, left, column, index)
    parts += _markers(envs, pin, index, left, column, body_h)
    parts += _legend(present, _TOP + body_h + 34)
    parts.append("</svg>")
    return "\n".join(parts) + "\n"


def _row(row: LineRow, number: int, left: int, column: int, index: dict[str, int]) -> list[str]:
    y = _TOP + number * _ROW_H + (_ROW_H - _BAR_H) // 2
    parts = [
        f'<g class="line-row" data-row="{escape(row.label)}">'
        f'<text x="{left - 8}" y="{y + _BAR_H - 4}" text-anchor="end">{escape(row.label)}</text>'
    ]
    for stretch in row.stretches:
        x = left + index[stretch.first] * column
        span = stretch.count * column
        data = (
            f'data-first="{escape(stretch.first)}" data-last="{escape(stretch.last)}" data-kind="{stretch.kind}"'
            f' data-diagnosis="{escape(stretch.diagnosis)}"'
            f' data-exact="{"" if stretch.exact_start is None else str(stretch.exact_start).lower()}"'
        )
        parts.append(
            f'<rect class="stretch" tabindex="0" x="{x}" y="{y}" width="{span}" height="{_BAR_H}"'
            f' fill="{FILLS[stretch.kind]}" {data}><title>{escape(stretch.about(row.label))}</title></rect>'
        )
        name = stretch.diagnosis or (stretch.error.partition(":")[0] if stretch.kind == BREAKS else "")
        if name and len(name) * 5.6 + 6 < span:
            parts.append(f'<text class="in-bar" x="{x + 3}" y="{y + _BAR_H - 4}">{escape(name)}</text>')
        if stretch.exact_start is not None:
            dash = "" if stretch.exact_start else ' stroke-dasharray="2 2"'
            parts.append(
                f'<line class="edge" data-exact="{str(stretch.exact_start).lower()}" x1="{x}" x2="{x}"'
                f' y1="{y - 3}" y2="{y + _BAR_H + 3}" stroke="#111" stroke-width="2"{dash}/>'
            )
    parts.append("</g>")
    return parts


def _minor_groups(releases: Sequence[str], left: int, column: int, body_h: int) -> list[str]:
    """A band per minor line (alternately shaded) with its name under the rows where it fits."""
    groups: dict[tuple[int, int], list[int]] = {}
    for number, release in enumerate(releases):
        version = Version(release)
        groups.setdefault((version.major, version.minor), []).append(number)
    parts, last_label, last_major = [], -100.0, None
    for shade, ((major, minor), numbers) in enumerate(groups.items()):
        x, span = left + numbers[0] * column, len(numbers) * column
        first, final = releases[numbers[0]], releases[numbers[-1]]
        what = f"{major}.{minor}: {first}" + (f"–{final}" if final != first else "") + f" ({len(numbers)})"
        fill = "#f1f1f1" if shade % 2 else "#fafafa"
        parts.append(
            f'<rect class="minor" x="{x}" y="{_TOP - 4}" width="{span}" height="{body_h + 8}" fill="{fill}">'
            f"<title>{escape(what)}</title></rect>"
        )
        major_start = major != last_major
        name = f"{major}.{minor}"
        if major_start or x - last_label >= len(name) * 6 + 6:
            weight = ' font-weight="700"' if major_start else ""
            parts.append(f'<text class="tick" x="{x}" y="{_TOP + body_h + 18}"{weight}>{name}</text>')
            last_label = x
        if major_start and last_major is not None:
            parts.append(f'<line x1="{x}" x2="{x}" y1="{_TOP - 6}" y2="{_TOP + body_h + 6}" stroke="#999"/>')
        last_major = major
    return parts


def _markers(
    envs: Sequence[tuple[str, str]], pin: str | None, index: dict[str, int], left: int, column: int, body_h: int
) -> list[str]:
    """A line across the rows at each env's release and at the pin, labelled above (two label rows)."""
    marks = [(version, f"{name} ({version})", ENV_COLOUR, "env") for name, version in envs if version in index]
    if pin in index:
        marks.append((str(pin), f"pin {pin}", PIN_COLOUR, "pin"))
    parts, ends = [], [-1e9, -1e9]
    right = left + column * len(index) + 12
    for version, text, colour, kind in sorted(marks, key=lambda mark: index[mark[0]]):
        x = left + index[version] * column + column / 2
        lane = 0 if x > ends[0] else 1 if x > ends[1] else 0
        ends[lane] = x + len(text) * _CHAR_W + 8
        width = 2.5 if kind == "pin" else 1.2
        dash = "" if kind == "pin" else ' stroke-dasharray="4 2"'
        flush_right = x + len(text) * _CHAR_W > right  # near the end: the label ends at its line
        anchor = f'x="{x - 3:.1f}" text-anchor="end"' if flush_right else f'x="{x + 3:.1f}"'
        parts.append(
            f'<g class="marker" data-kind="{kind}" data-release="{escape(version)}">'
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{_TOP - 8 - 14 * (1 - lane)}" y2="{_TOP + body_h + 4}"'
            f' stroke="{colour}" stroke-width="{width}"{dash}/>'
            f'<text {anchor} y="{12 + 14 * lane}" fill="{colour}">{escape(text)}</text></g>'
        )
    return parts


def _legend(present: Sequence[str], y: int) -> list[str]:
    """Swatches for the kinds of stretch that occur, then the edges and markers."""
    items = [(kind, KIND_WORDS[kind].partition(" (")[0]) for kind in present]
    parts = ['<g class="legend">']
    for number, (kind, words) in enumerate(items):
        x, row = 8 + (number % 4) * 230, y + 22 * (number // 4)
        parts.append(
            f'<rect x="{x}" y="{row - 10}" width="14" height="12" fill="{FILLS[kind]}"/>'
            f'<text x="{x + 20}" y="{row}">{escape(words)}</text>'
        )
    row = y + 22 * ((len(items) + 3) // 4)
    parts.append(
        f'<line x1="12" x2="12" y1="{row - 12}" y2="{row + 2}" stroke="#111" stroke-width="2"/>'
        f'<text x="20" y="{row}">exact edge</text>'
        f'<line x1="112" x2="112" y1="{row - 12}" y2="{row + 2}" stroke="#111" stroke-width="2"'
        ' stroke-dasharray="2 2"/><text x="120" y="' + str(row) + '">approximate edge</text>'
        f'<line x1="262" x2="262" y1="{row - 12}" y2="{row + 2}" stroke="{ENV_COLOUR}" stroke-dasharray="4 2"/>'
        f'<text x="270" y="{row}">an env of this run</text>'
        f'<line x1="402" x2="402" y1="{row - 12}" y2="{row + 2}" stroke="{PIN_COLOUR}" stroke-width="2.5"/>'
        f'<text x="410" y="{row}" fill="{PIN_COLOUR}">the recommended pin</text></g>'
    )
    return parts
