"""The badge a team puts in its README: the pin, and how many models the newest release runs.

Two files from one decision: `badge.svg` (drawn here, no network, shields.io's flat look)
and `badge.json` in shields.io's endpoint format (`https://img.shields.io/endpoint?url=...`),
for a team that prefers shields' own rendering. Green when the newest env of the run serves
every model, red when it breaks one (the upgrade a team would make next is not safe), grey
when no version runs them all. A pre-release env never counts as the newest release: what
the upcoming release breaks is reported apart, not as today's state.
"""

from __future__ import annotations

import html
import json

from matrix.recommend import Recommendation
from matrix.report.answer import is_upcoming
from matrix.results.aggregate import Matrix, serves

LABEL = "transformers"
COLOURS = {"green": "#4c1", "red": "#e05d44", "grey": "#9f9f9f"}
_CHAR_W = 6.5  # Verdana 11px, about; the text box is sized from it


def badge_message(matrix: Matrix, rec: Recommendation) -> tuple[str, str]:
    """("4.41.2 ✓ 4/4", colour): the pin and the models it runs; red when the newest built env
    of the run breaks a model (the next upgrade is not safe), grey when no single pin exists."""
    built = [env for env in matrix.envs if env.built and not is_upcoming(env)]  # a pre-release is not "newest"
    newest = built[-1].name if built else None
    newest_runs = sum(
        any(serves(row.cells.get(newest)) for row in matrix.rows if row.model == model) if newest else False
        for model in matrix.models
    )
    pin = rec.pin()
    if pin is None:
        return f"no single pin: {len(rec.route())} envs", "grey"
    served = len(matrix.models) - len(rec.uncovered)
    colour = "green" if newest_runs == len(matrix.models) else "red"
    return f"{pin['transformers']} ✓ {served}/{len(matrix.models)}", colour


def badge_files(matrix: Matrix, rec: Recommendation) -> dict[str, str]:
    """{"badge.svg": svg, "badge.json": shields endpoint JSON}."""
    message, colour = badge_message(matrix, rec)
    endpoint = {"schemaVersion": 1, "label": LABEL, "message": message, "color": colour}
    return {
        "badge.svg": _svg(LABEL, message, COLOURS[colour]),
        "badge.json": json.dumps(endpoint, ensure_ascii=False) + "\n",
    }


def _svg(label: str, message: str, fill: str) -> str:
    left, right = int(len(label) * _CHAR_W + 10), int(len(message) * _CHAR_W + 10)
    width = left + right
    text_l, text_r = html.escape(label), html.escape(message)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="20" role="img" '
        f'aria-label="{text_l}: {text_r}"><title>{text_l}: {text_r}</title>'
        f'<rect width="{left}" height="20" fill="#555"/><rect x="{left}" width="{right}" height="20" fill="{fill}"/>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,DejaVu Sans,sans-serif" font-size="11">'
        f'<text x="{left / 2:.1f}" y="14">{text_l}</text><text x="{left + right / 2:.1f}" y="14">{text_r}</text>'
        "</g></svg>\n"
    )
