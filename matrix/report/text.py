"""Text that came from elsewhere, made safe for one line of a table, and the links a report gives.

Exception messages come from third-party code: they can hold newlines, ANSI colours, bidi
controls and Markdown or HTML metacharacters. Every renderer passes them through here, so a
message can never break a table row or restyle the text around it.
"""

from __future__ import annotations

import re
from urllib.parse import quote

_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ud800-\udfff]")
_MD_ESCAPES = str.maketrans({char: "\\" + char for char in "\\|`*_<>[]"})
_SAFE_VERSION = re.compile(r"[0-9A-Za-z.-]+")  # no '+': a local build (4.41.2+path.<sha8>) has no release page
RELEASES = "https://github.com/huggingface/transformers/releases/tag/v"
HUB = "https://huggingface.co/"


def one_line(text: str, limit: int = 120) -> str:
    """First line of `text`, control characters removed, cut to `limit` characters."""
    text = _ANSI.sub("", text or "")
    first = next((line.strip() for line in text.splitlines() if line.strip()), "")[: limit * 4]
    first = _UNPRINTABLE.sub(" ", first)
    return first if len(first) <= limit else first[: limit - 1] + "…"


def md_escape(text: str) -> str:
    """Make text safe inside a Markdown table cell."""
    return text.translate(_MD_ESCAPES)


def release_notes_url(version: str) -> str | None:
    """The GitHub release page of a transformers release (None for anything that is no version)."""
    return RELEASES + version if _SAFE_VERSION.fullmatch(version or "") else None


def hub_url(hub_id: str, revision: str | None = None) -> str:
    """The model's page on the hub, at its revision when one is pinned."""
    url = HUB + quote(hub_id, safe="/")
    return f"{url}/tree/{quote(revision, safe='')}" if revision else url


def md_link(text: str, url: str | None) -> str:
    """A Markdown link (the text escaped), or the escaped text alone when there is no url."""
    return f"[{md_escape(text)}]({url})" if url else md_escape(text)
