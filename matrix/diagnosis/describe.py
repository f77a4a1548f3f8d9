"""Words for differential evidence (matrix/diagnosis/differential.py): values, causes, fixes.

The recorder stores small summaries of values (probes/recorder.py `summary`); a diagnosis
reads them back as a person would write them ("DynamicCache (len 0)", "None",
`{"rope_theta": 10000.0, "rope_type": "default"}`), and each kind of change gets the
cause and the fix that follow from it: what the model's code must accept, the config value
to set, the tensor to recompute, and the pin below the first bad release.
"""

from __future__ import annotations

import json
from typing import Any

ABSENT = {"absent": True}  # an argument the last good release did not pass
NOT_READ = {"not_read": True}  # a config attribute the model's code did not read there

_PHASE_CALLER = {
    "generate": "generate",
    "chat": "the chat call",
    "forward": "the forward call",
    "load": "from_pretrained",
}


def value_text(value: Any) -> str:
    """One recorded summary as a person writes it."""
    if value is None or isinstance(value, (bool, int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if not isinstance(value, dict):
        return str(value)
    if value == ABSENT:
        return "nothing"
    if value == NOT_READ:
        return "not read"
    if value.get("missing"):
        return "no such attribute"
    kind = value.get("type", "?")
    if value.get("cache"):
        length = value.get("len")
        seen = value.get("seq_length")
        more = f", seq_length {seen}" if seen not in (None, 0, length) else ""
        return f"{kind} (len {length}{more})"
    if "shape" in value:
        return f"{kind}{value['shape']} {value.get('dtype', '')}".strip()
    if isinstance(value.get("items"), dict):
        inner = ", ".join(f"{json.dumps(key)}: {value_text(item)}" for key, item in value["items"].items())
        return "{" + inner + "}" if kind == "dict" else f"{kind} {{{inner}}}"
    if isinstance(value.get("items"), list):
        return f"{kind} (len {value.get('len')})"
    if "keys" in value:
        return f"{kind} with keys {', '.join(value['keys'])}"
    return kind


def short_id(change: dict[str, Any]) -> str:
    if change["kind"] == "argument":
        return f"changed argument: {change['function']}({change['name']})"
    if change["kind"] == "config":
        return f"changed config value: {change['name']}"
    words = {
        "matches_init": "not what __init__ computes",
        "matches_checkpoint": "not the checkpoint's",
        "nonfinite": "non-finite",
        "all_zero": "all zero",
    }
    return f"{_tensor_kind(change['now'])} {words[change['flag']]}: {change['name']}"


def cause(change: dict[str, Any], last_good: str, first_bad: str) -> str:
    was, now = value_text(change["was"]), value_text(change["now"]) if change["kind"] != "tensor" else ""
    if change["kind"] == "argument":
        caller = _PHASE_CALLER.get(change.get("phase", ""), "transformers")
        return (
            f"{caller} passes {now} for {change['name']} to the model's {change['function']} since "
            f"{first_bad}; {last_good} passed {was}"
        )
    if change["kind"] == "config":
        read = "(as the model's code reads it)"
        return f"config.{change['name']} is {now} since {first_bad}, was {was} in {last_good} {read}"
    tensor, name = change["now"], change["name"]
    kind = _tensor_kind(tensor)
    if change["flag"] == "matches_init":
        return (
            f"{kind} `{name}` is not what `__init__` computes since {first_bad} ({_tensor_state(tensor)}); "
            f"in {last_good} it was"
        )
    if change["flag"] == "matches_checkpoint":
        return (
            f"{kind} `{name}` is not the checkpoint's tensor after loading since {first_bad} "
            f"({_tensor_state(tensor)}): the load replaced it; {last_good} kept the checkpoint's values"
        )
    if change["flag"] == "nonfinite":
        count = tensor["nonfinite"]
        return f"{kind} `{name}` holds {count} non-finite values after loading since {first_bad}; none in {last_good}"
    return f"{kind} `{name}` is all zero after loading since {first_bad}; not in {last_good}"


def fixes(change: dict[str, Any], last_good: str, first_bad: str) -> list[str]:
    pin = f"or pin transformers<{first_bad} ({last_good} ran it)"
    was, now = value_text(change["was"]), value_text(change["now"]) if change["kind"] != "tensor" else ""
    if change["kind"] == "argument":
        if (change["now"] or {}).get("cache") and change["was"] is None:
            return [
                f"treat an empty Cache like None in {change['function']}: test `{change['name']} is None or "
                f"{change['name']}.get_seq_length() == 0`, and read the cached length with "
                f"`{change['name']}.get_seq_length()` instead of indexing it",
                pin,
            ]
        return [f"make {change['function']} accept {now} for {change['name']} (it was {was} up to {last_good})", pin]
    if change["kind"] == "config":
        return [
            f"make the model's code accept config.{change['name']} = {now} (read it with .get(), or test for "
            f"what it needs rather than for {was}), or set `{change['name']}` back to {was} in the config class "
            "after `super().__init__()`",
            pin,
        ]
    leaf = change["name"].rsplit(".", 1)[-1]
    if change["flag"] == "matches_init" and change["now"].get("kind") == "buffer":
        return [
            f"recompute `{leaf}` where the load cannot skip it: in the model's `_init_weights`, or lazily in "
            "forward (a non-persistent buffer is never read from the checkpoint)",
            pin,
        ]
    if change["flag"] == "matches_checkpoint":
        return [
            "guard the model's `_init_weights` so it leaves tensors the checkpoint supplied alone, "
            "or load the checkpoint's tensors again after from_pretrained",
            pin,
        ]
    return [f"find what sets `{leaf}` in the load of {first_bad}", pin]


def evidence_line(change: dict[str, Any], last_good: str, first_bad: str) -> str:
    if change["kind"] == "argument":
        where = f"[{change['file']}, {change.get('phase') or '?'}, first call]"
        return (
            f"{change['function']}({change['name']}=...): {last_good} {value_text(change['was'])}, "
            f"{first_bad} {value_text(change['now'])} {where}"
        )
    if change["kind"] == "config":
        return (
            f"config.{change['name']} read by {change['file']}: {last_good} {value_text(change['was'])}, "
            f"{first_bad} {value_text(change['now'])}"
        )
    was, now = change["was"], change["now"]
    return (
        f"{_tensor_kind(now)} {change['name']} from {now.get('from')}: {last_good} {_tensor_state(was)}, "
        f"{first_bad} {_tensor_state(now)}"
    )


def _tensor_kind(tensor: dict[str, Any]) -> str:
    if tensor.get("kind") == "buffer":
        return "buffer" if tensor.get("persistent") else "non-persistent buffer"
    return "parameter"


def _tensor_state(tensor: dict[str, Any]) -> str:
    words = [f"checksum {tensor['checksum']}"] if tensor.get("checksum") else []
    for flag, yes, no in (
        ("matches_init", "= __init__", "!= __init__"),
        ("matches_checkpoint", "= checkpoint", "!= checkpoint"),
    ):
        if tensor.get(flag) is not None:
            words.append(yes if tensor[flag] else no)
    if tensor.get("nonfinite"):
        words.append(f"{tensor['nonfinite']} non-finite")
    if tensor.get("all_zero"):
        words.append("all zero")
    return ", ".join(words)
