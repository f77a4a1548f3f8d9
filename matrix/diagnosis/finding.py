"""What a diagnosis says, whichever layer made it.

Every layer (the curated table, symbol history, the traceback, the verdicts for missing
packages and non-finite outputs) returns the same `Diagnosis`, so renderers never care
where an explanation came from, and every explanation says where it came from and how sure
it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

# Where an explanation came from, in the order the layers are consulted.
SOURCES = ("table", "missing-package", "non-finite", "symbol-history", "traceback", "differential")
CONFIDENCE = ("high", "medium", "low")


@dataclass
class Diagnosis:
    """Why one failing cell failed, from evidence, and what to do about it.

    `id` is short enough for a table cell ("removed: GenerationMixin.get_max_length");
    `introduced_in` is the first release that fails this way (exact when `exact`, else the
    oldest failing release the evidence had); `last_good` the newest release that did not.
    `evidence` holds the facts the conclusion rests on, one line each (a definition's
    file:line in the last good release, its deprecation message, the model's frame).
    """

    source: str
    id: str
    cause: str
    confidence: str = "medium"
    introduced_in: str | None = None
    last_good: str | None = None
    exact: bool = False
    symbol: str | None = None
    evidence: list[str] = field(default_factory=list)
    fixes: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"diagnosis source {self.source!r} is not one of {SOURCES}")
        if self.confidence not in CONFIDENCE:
            raise ValueError(f"diagnosis confidence {self.confidence!r} is not one of {CONFIDENCE}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Diagnosis:
        names = cls.__dataclass_fields__
        return cls(**{key: value for key, value in data.items() if key in names})
