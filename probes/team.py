"""The team's own code inside a cell: its probe scripts and its shims.

A probe script is a file beside the config that defines

    def probe(model, tokenizer, ctx) -> dict:
        ...
        return {"ranking": [2, 0, 1], "reply": text, "scores": tensor}

It runs after the built-in phases, as its own phase `probe:<file stem>`, under
`torch.inference_mode()`, with torch's seed reset to 0. Whatever it raises is classified
like any other failure of the cell. What it returns are its named outputs: text, numbers,
booleans, lists of them, tensors or numpy arrays (stored as lists; a tensor of more than
MAX_TENSOR_VALUES as its shape, first values and statistics). They are kept in the
cell's fingerprint under `probes.<stem>` and compared across envs by the host exactly like
the built-in outputs: drift from the model's reference, and the proof a shim changed
nothing. NaN or inf in an output fails the phase, as in the built-in ones.

`ctx` (a `ProbeContext`) gives the device, the model's dtype, a seeded RNG and torch
generator, and two ways to report metrics that `metric_budgets` in the config can bound:
`ctx.time(name, call)` times repeated calls as the built-in phases do (`<name>_first_s`,
`<name>_median_s`), `ctx.metric(name, value)` records any number.

A team's shim is `def fix(model, tokenizer) -> None` in a file beside the config, applied
like a built-in one at its declared stage (`fix.stage = "tokenizer"`, else after load).

The host has already checked each file statically (matrix/team_code.py); this module
loads them, in the child, only when the cell reaches them.
"""

from __future__ import annotations

import importlib.util
import math
import os
import random
import sys
import time
from contextlib import contextmanager
from typing import Any, Dict, Iterator, List

from probes.observe import REPEATS, CellFailure, NonFiniteOutputs, Observations
from probes.shims import SHIMS, Shim

SIGNIFICANT_DIGITS = 7
# A tensor output larger than this is kept as a summary (its first values and statistics):
# a probe returning full logits (151k per token for Qwen2) would otherwise put megabytes
# into every cell file, matrix.json and the page.
MAX_TENSOR_VALUES = 4096
SUMMARY_HEAD = 256


def load_function(entry: Dict[str, str]) -> Any:
    """The function `entry["function"]` of the file `entry["path"]`, imported as its own module.

    The file's folder goes on sys.path first, so a script can import a helper module kept
    beside it. Only the forked child does this: the team's code never runs in the runner's parent.
    """
    path = entry["path"]
    folder = os.path.dirname(path)
    if folder not in sys.path:
        sys.path.insert(0, folder)
    module_name = f"_team_{entry['name'].replace('-', '_')}_{entry['sha256'][:12]}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return getattr(module, entry["function"])


def variant_shims(spec: Dict[str, Any]) -> List[Shim]:
    """The shims a cell's variant applies, in its order: `a` or a combination `a+b`, each
    a built-in one or one of the team's (imported now)."""
    variant = spec.get("variant") or ""
    team = {entry["name"]: entry for entry in spec.get("team_shims") or []}
    found = []
    for name in variant.split("+") if variant else []:
        if name in SHIMS:
            found.append(SHIMS[name])
            continue
        entry = team[name]
        found.append(
            Shim(
                name=name,
                patches=f"{entry['path']}:{entry['function']}",
                meant_for="the team's own fix",
                apply=load_function(entry),
                stage=entry.get("stage") or "model",
            )
        )
    return found


class ProbeContext:
    """What a probe script gets besides the model and the tokenizer."""

    def __init__(self, cell: Observations, name: str, model: Any, torch: Any) -> None:
        self.name = name
        self.torch = torch
        self.device: str = cell.device
        parameter = next(iter(model.parameters()), None) if hasattr(model, "parameters") else None
        self.dtype = parameter.dtype if parameter is not None else None
        self.seed = 0
        self.rng = random.Random(self.seed)
        self.generator = torch.Generator().manual_seed(self.seed)
        self.max_new_tokens = int(cell.spec.get("max_new_tokens") or 8)
        self._cell = cell

    def metric(self, name: str, value: float) -> None:
        """Record a number under `<probe>.<name>` (a `metric_budgets` entry can bound it)."""
        number = float(value)
        if not math.isfinite(number):
            nan, inf = int(math.isnan(number)), int(math.isinf(number))
            raise NonFiniteOutputs(self._cell.phase, f"values of metric {name!r}", nan, inf, 1)
        self._cell.metrics[f"{self.name}.{name}"] = float(f"{number:.{SIGNIFICANT_DIGITS}g}")

    def time(self, name: str, call: Any, repeats: int = REPEATS) -> Any:
        """Time `call()` as the built-in phases do (the first call, then the median of
        repeats, CUDA synchronised): metrics `<probe>.<name>_first_s` and `_median_s`.
        Returns the first call's result."""
        return self._cell.timed_calls(f"{self.name}.{name}", call, self.torch, repeats=repeats)

    @contextmanager
    def timer(self, name: str) -> Iterator[None]:
        """Time one block (CUDA synchronised): metric `<probe>.<name>_s`."""
        start = time.perf_counter()
        yield
        if self.device == "cuda":
            self.torch.cuda.synchronize()
        self.metric(f"{name}_s", time.perf_counter() - start)


def run_probe(cell: Observations, entry: Dict[str, str], model: Any, tokenizer: Any, torch: Any) -> None:
    """Run one probe script in the current phase; keep its outputs, fail on non-finite ones."""
    probe = load_function(entry)
    torch.manual_seed(0)
    ctx = ProbeContext(cell, entry["name"], model, torch)
    with torch.inference_mode():
        returned = probe(model, tokenizer, ctx)
    if returned is None:
        returned = {}
    if not isinstance(returned, dict):
        raise CellFailure(f"probe {entry['name']} returned {type(returned).__name__}, not a dict of named outputs")
    outputs = {str(key): _plain(value, f"output {key!r}", entry["name"]) for key, value in returned.items()}
    cell.fingerprint.setdefault("probes", {})[entry["name"]] = outputs
    for key, value in outputs.items():
        numbers = list(_floats(value))
        nan = sum(1 for number in numbers if math.isnan(number))
        inf = sum(1 for number in numbers if math.isinf(number))
        if nan or inf:
            raise NonFiniteOutputs(cell.phase, f"values of output {key!r}", nan, inf, len(numbers))


def _plain(value: Any, where: str, probe: str) -> Any:
    """An output as JSON-able data: tensors and arrays become (nested) lists, floats keep
    SIGNIFICANT_DIGITS (the host compares them with the drift tolerances)."""
    if hasattr(value, "detach"):  # a torch tensor
        value = value.detach().cpu()
        if value.numel() > MAX_TENSOR_VALUES:
            return _summary(value)
        value = value.float().tolist() if value.is_floating_point() else value.tolist()
    elif hasattr(value, "tolist") and hasattr(value, "dtype"):  # a numpy array or scalar
        value = value.tolist()
    if value is None or isinstance(value, (str, bool, int)):
        return value
    if isinstance(value, float):
        return float(f"{value:.{SIGNIFICANT_DIGITS}g}") if math.isfinite(value) else value
    if isinstance(value, (list, tuple)):
        return [_plain(item, where, probe) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item, where, probe) for key, item in value.items()}
    raise CellFailure(
        f"probe {probe}: {where} is a {type(value).__name__}; return text, numbers, booleans, lists, dicts or tensors"
    )


def _summary(tensor: Any) -> Dict[str, Any]:
    """A large tensor as what the host can still compare: shape, first values, statistics.
    NaN or inf anywhere in it shows in the statistics, so the finite check still fails the
    phase (counting the summary's values, not the tensor's)."""
    flat = tensor.reshape(-1)
    numbers = flat.double()
    return {
        "summary_of": list(tensor.shape),
        "first": _plain(flat[:SUMMARY_HEAD], "summary", ""),
        "mean": _plain(float(numbers.mean()), "summary", ""),
        "abs_mean": _plain(float(numbers.abs().mean()), "summary", ""),
        "min": _plain(float(numbers.min()), "summary", ""),
        "max": _plain(float(numbers.max()), "summary", ""),
    }


def _floats(value: Any) -> Iterator[float]:
    if isinstance(value, float):
        yield value
    elif isinstance(value, list):
        for item in value:
            yield from _floats(item)
    elif isinstance(value, dict):
        for item in value.values():
            yield from _floats(item)
