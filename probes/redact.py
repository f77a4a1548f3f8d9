"""Keep secrets out of everything this project writes: cell files, logs, tables, the page.

A probe must see HF_TOKEN (gated repos need it), and model code is third-party: it may
print the environment or put a token into an exception message. So every text that is
stored goes through `redact`, which replaces

- the value of every secret-looking variable of this process's environment (a name with
  TOKEN, SECRET, PASSWORD, ... in it), wherever it appears, and
- token-shaped strings whatever their origin (a Hugging Face `hf_...` token, the password
  in `scheme://user:password@host`, `Authorization: Bearer ...`), since a shard merged from
  another machine carries secrets this process cannot know by value.
"""

from __future__ import annotations

import os
import re
from typing import Any, List, Mapping

MARK = "[REDACTED]"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|PASSWD|API_?KEY|ACCESS_?KEY|PRIVATE_?KEY|CREDENTIAL|AUTH", re.I)
MIN_SECRET_LENGTH = 8
# Token shapes. Every cell read or written passes through here and most texts hold none of
# them, so each pattern is searched only in a text that holds its clue (a cheap `in`).
HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{20,}\b")
URL_PASSWORD = re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+(?=@)")
BEARER = re.compile(r"(?i)(?<=bearer )[A-Za-z0-9._~+/=-]{8,}")


def secret_values(environ: "Mapping[str, str] | None" = None) -> List[str]:
    """Values of secret-looking variables, longest first (so no part of one survives)."""
    source = os.environ if environ is None else environ
    values = {value for name, value in source.items() if SECRET_NAME.search(name) and len(value) >= MIN_SECRET_LENGTH}
    return sorted(values, key=len, reverse=True)


def redact(text: str, secrets: "List[str] | None" = None) -> str:
    """`text` with every secret value and token-shaped string replaced by MARK."""
    for value in secret_values() if secrets is None else secrets:
        if value in text:
            text = text.replace(value, MARK)
    if "hf_" in text:
        text = HF_TOKEN.sub(MARK, text)
    if "://" in text:
        text = URL_PASSWORD.sub(MARK, text)
    if "earer " in text or "EARER " in text:
        text = BEARER.sub(MARK, text)
    return text


def redact_data(data: Any, secrets: "List[str] | None" = None) -> Any:
    """A copy of JSON-like `data` with every string (keys included) redacted."""
    secrets = secret_values() if secrets is None else secrets
    if isinstance(data, str):
        return redact(data, secrets)
    if isinstance(data, dict):
        return {redact_data(key, secrets): redact_data(value, secrets) for key, value in data.items()}
    if isinstance(data, (list, tuple)):
        return [redact_data(item, secrets) for item in data]
    return data


def redact_file(path: "os.PathLike[str] | str") -> None:
    """Rewrite a log file in place when it holds a secret (read as bytes: logs need not be UTF-8)."""
    secrets = secret_values()
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError:
        return
    text = raw.decode("utf-8", "surrogateescape")
    cleaned = redact(text, secrets)
    if cleaned != text:
        with open(path, "wb") as handle:
            handle.write(cleaned.encode("utf-8", "surrogateescape"))
