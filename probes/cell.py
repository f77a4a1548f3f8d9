"""What one child process does for one cell: the phases in order, each timed.

Phases: resolve (find the files), config, tokenizer (with a round trip of an English and a
Chinese sentence), load, forward, then the task (`embed` or `generate`), then each of the
team's probe scripts (`probe:<name>`, probes/team.py). The first phase
that raises is the cell's failed phase; the exception is recorded as it is (type, message,
traceback) and mapped to a status only where the exception itself says what it means
(out of memory, no such repo, offline). Outputs that hold NaN or inf fail the phase that
produced them (`NonFiniteOutputs`): a silent numerical break is a break. Judging *why* it
broke is `matrix/`'s job.
"""

from __future__ import annotations

import traceback
from collections import Counter
from typing import Any

from probes import device, memory, recorder, tasks, team, texts
from probes.loading import loading_info
from probes.observe import CellFailure, NonFiniteOutputs, Observations, host_facts
from probes.status import Status

# Re-exported: the failures a cell's own checks raise (defined with the record in observe).
__all__ = ["Cell", "CellFailure", "HubFetchError", "NonFiniteOutputs", "classify", "clean_text"]

MAX_TEXT = 65536

# Exception class names (anywhere in the __cause__/__context__ chain) that say the model's
# files could not be had, checked in this order (GatedRepoError subclasses
# RepositoryNotFoundError, so it must win over it): status, the words for the table, and a
# detail naming the repo, added where the failing call is known (`_resolve`). The names are
# the same in huggingface_hub 0.x (transformers 4.x) and 1.x+ (transformers 5.x), and
# transformers' own OSError carries the hub's error as its __cause__.
_HUB_ERRORS = (
    ("GatedRepoError", Status.UNAVAILABLE, "gated: set HF_TOKEN", "{repo} needs a token with access"),
    ("RevisionNotFoundError", Status.INVALID_MODEL, "no such revision", "{revision!r} does not exist in {repo}"),
    ("RepositoryNotFoundError", Status.INVALID_MODEL, "no such model id", "{repo}; private repos need HF_TOKEN"),
    ("HFValidationError", Status.INVALID_MODEL, "malformed model id", "{repo!r}"),
    ("LocalEntryNotFoundError", Status.UNAVAILABLE, "offline, not cached", "{repo} is not in the local HF cache"),
    ("OfflineModeIsEnabled", Status.UNAVAILABLE, "offline, not cached", "{repo} is not in the local HF cache"),
)


class HubFetchError(OSError):
    """A hub id's files could not be had; says which repo and revision, the hub's error is the cause."""


class Cell(Observations):
    """Runs the phases of one cell and collects what it observed."""

    def __init__(self, spec: dict[str, Any]) -> None:
        super().__init__(spec)
        self.cuda_baseline = 0
        self.recorder: recorder.Recorder | None = None

    def run(self) -> dict[str, Any]:
        """Run every phase; return the partial result the parent completes."""
        rss_start = memory.reset_peak_rss()
        try:
            self._run_phases()
        except device.NoGPU as exc:
            return self._result(Status.SKIPPED, str(exc), rss_start)
        except BaseException as exc:  # model code may raise anything, SystemExit included
            if isinstance(exc, KeyboardInterrupt):
                raise
            status, reason = classify(exc, self.phase)
            error = {
                "type": type(exc).__name__,
                "message": clean_text(_message(exc)),
                "traceback": clean_text(traceback.format_exc()),
            }
            return self._result(status, clean_text(reason), rss_start, phase=self.phase, error=error)
        variant = self.spec.get("variant")
        status = Status.PASS_WITH_SHIM if variant else Status.PASS
        reason = f"passes with shim {variant}" if variant else ""
        return self._result(status, reason, rss_start)

    def _result(self, status: Status, reason: str, rss_start: memory.MemoryStart, **extra: Any) -> dict[str, Any]:
        peak_kb = memory.proc_status_kb("VmHWM")
        self.metrics["peak_rss_increase_mb"] = round((peak_kb - rss_start.rss_kb) / 1024, 1)
        remapped_kb = memory.remapped_kb(rss_start.mapped_kb, memory.file_mappings_kb())
        self.metrics["model_peak_mb"] = round(max(0, peak_kb - rss_start.rss_kb - remapped_kb) / 1024, 1)
        self.facts["host"] = host_facts()
        if self.recorder is not None:
            self.recorder.stop()
            self.facts["recorder"] = self.recorder.facts()
        self._cuda_metrics()
        return {
            "status": status.value,
            "reason": reason,
            "timings": self.timings,
            "metrics": self.metrics,
            "fingerprint": self.fingerprint,
            "facts": self.facts,
            "device": self.device,
            **extra,
        }

    def _run_phases(self) -> None:
        spec = self.spec
        import torch
        import transformers

        # Before resolving: a model that needs a GPU is skipped on a CPU host without
        # downloading its weights.
        self.device, dtype = device.choose(spec["device"], spec.get("dtype"), torch)
        if self.device == "cuda":
            self.cuda_baseline = device.start_memory(torch)
            self.facts["gpu"] = device.gpu_facts(torch)
        with self.timed("resolve"):
            location = _resolve(spec)
        torch.manual_seed(0)
        common: dict[str, Any] = {"trust_remote_code": spec["trust_remote_code"]}
        if spec["source_kind"] == "hub" and spec.get("revision"):
            common["revision"] = spec["revision"]
        with self.timed("config"):
            config = transformers.AutoConfig.from_pretrained(location, **common)
            self.facts["model_type"] = getattr(config, "model_type", "")
        with self.timed("tokenizer"):
            tokenizer = transformers.AutoTokenizer.from_pretrained(location, **common)
            shims = team.variant_shims(spec)
            for shim in shims:
                if shim.stage == "tokenizer":
                    shim.apply(None, tokenizer)
            self.facts["tokenizer_class"] = type(tokenizer).__name__
            self.facts["round_trip"] = _round_trip(tokenizer)
        auto = transformers.AutoModelForCausalLM if spec["task"] == "causal-lm" else transformers.AutoModel
        load_kwargs = _load_kwargs(spec, dtype, transformers.__version__, torch)
        self.facts["load_kwargs"] = {key: str(value) for key, value in load_kwargs.items()}
        if recorder.wanted(spec):  # a diagnosis probe: what the model's code sees (off otherwise)
            self.recorder = recorder.Recorder(lambda: self.phase)
            self.recorder.start(transformers)
        with self.timed("load"):
            # The documented call with the config's keywords and nothing added: a remote-code
            # class may override `from_pretrained` (and return only the model).
            model = auto.from_pretrained(location, **load_kwargs, **common)
            if "device_map" not in load_kwargs:
                model = model.to(self.device)
            model = model.eval()
            self.facts["model_class"] = type(model).__name__
            self.facts.update(_placement(model))
            if "device_map" in load_kwargs:  # accelerate placed it: the inputs follow the model
                self.device = "cuda" if self.facts["model_device"].startswith("cuda") else "cpu"
        info = loading_info(model, location)
        if info:
            self.facts["loading_info"] = info
        if self.recorder is not None:
            self.recorder.set_model(model)
            self.recorder.record_state(model, location, torch)
        for shim in shims:
            if shim.stage == "model":
                shim.apply(model, tokenizer)
        with torch.inference_mode():
            with self.timed("forward"):
                tasks.forward(self, model, tokenizer, torch)
            if spec["task"] == "causal-lm":
                with self.timed("generate"):
                    tasks.generate(self, model, tokenizer, torch)
                if spec.get("chat"):
                    with self.timed("chat"):
                        tasks.chat(self, model, tokenizer, torch)
            else:
                with self.timed("embed"):
                    tasks.embed(self, model, tokenizer, torch)
        for script in spec.get("probes") or []:
            with self.timed(f"probe:{script['name']}"):
                team.run_probe(self, script, model, tokenizer, torch)

    def _cuda_metrics(self) -> None:
        if self.device != "cuda":
            return
        import torch

        self.metrics.update(device.memory_metrics(torch, self.cuda_baseline))


def clean_text(text: str, limit: int = MAX_TEXT) -> str:
    """Text that is safe to store: valid UTF-8 (bad bytes and lone surrogates escaped) and at
    most `limit` characters (third-party messages can be megabytes long)."""
    text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if len(text) > limit:
        text = text[: limit // 2] + f"\n[... {len(text) - limit} characters cut ...]\n" + text[-limit // 2 :]
    return text


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception as inner:  # noqa: BLE001 - a broken __str__ must not lose the cell
        return f"<str() of the exception failed: {type(inner).__name__}>"


def classify(exc: BaseException, phase: str) -> tuple[Status, str]:
    """Map an exception to a status only where the exception itself says what happened."""
    if isinstance(exc, MemoryError) or type(exc).__name__ == "OutOfMemoryError":
        return Status.OOM, f"out of memory in {phase}"
    if isinstance(exc, RuntimeError) and "can't allocate memory" in str(exc):
        return Status.OOM, f"out of memory in {phase}"
    if phase in ("resolve", "config", "tokenizer", "load"):
        known = _hub_error(exc)
        if known is not None:
            status, reason, _ = known
            return status, _message(exc) if isinstance(exc, HubFetchError) else reason
    if isinstance(exc, NonFiniteOutputs):
        return Status.FAIL, str(exc)  # the message already names the phase and the counts
    first_line = (_message(exc).strip().splitlines() or [""])[0][:200]
    return Status.FAIL, f"{type(exc).__name__} in {phase}: {first_line}"


def _resolve(spec: dict[str, Any]) -> str:
    """Local folder for local sources; a downloaded (or cached) snapshot for hub ids."""
    if spec["source_kind"] != "hub":
        import os

        location = spec["location"]
        if not os.path.isfile(os.path.join(location, "config.json")):
            raise FileNotFoundError(f"no config.json in model folder {location}")
        return location
    from huggingface_hub import snapshot_download

    repo, revision = spec["location"], spec.get("revision")
    try:
        return snapshot_download(repo, revision=revision)
    except Exception as exc:
        known = _hub_error(exc)
        if known is None:
            raise
        _, reason, detail = known
        raise HubFetchError(f"{reason} ({detail.format(repo=repo, revision=revision or 'main')})") from exc


def _hub_error(exc: BaseException) -> tuple[Status, str, str] | None:
    """The `_HUB_ERRORS` row for the first hub error class found in the exception's chain."""
    names: set[str] = set()
    seen: BaseException | None = exc
    for _ in range(20):
        if seen is None:
            break
        names.update(cls.__name__ for cls in type(seen).__mro__)
        seen = seen.__cause__ or seen.__context__
    for name, status, reason, detail in _HUB_ERRORS:
        if name in names:
            return status, reason, detail
    return None


def _load_kwargs(spec: dict[str, Any], dtype: Any, version: str, torch: Any) -> dict[str, Any]:
    """The keywords for `from_pretrained` beyond trust_remote_code and revision: the config's
    `load_kwargs` as given (a dtype name becomes the torch dtype), and the model's `dtype`
    key when set, under the name this release reads (`torch_dtype` before 4.56). Nothing
    else: a plain call's behaviour in each release is what is observed."""
    kwargs = dict(spec.get("load_kwargs") or {})
    for key in ("dtype", "torch_dtype"):
        if isinstance(kwargs.get(key), str) and kwargs[key] != "auto":
            kwargs[key] = getattr(torch, kwargs[key])
    if dtype is not None:
        kwargs["dtype" if _version(version) >= (4, 56) else "torch_dtype"] = dtype
    return kwargs


def _placement(model: Any) -> dict[str, Any]:
    """The dtype and device the loaded model's parameters actually got (every one found)."""
    dtypes = Counter(str(parameter.dtype).replace("torch.", "") for parameter in model.parameters())
    devices = Counter(str(parameter.device) for parameter in model.parameters())
    return {
        "dtype": dtypes.most_common(1)[0][0] if dtypes else "",
        "dtypes": sorted(dtypes),
        "model_device": devices.most_common(1)[0][0] if devices else "",
        "model_devices": sorted(devices),
    }


def _round_trip(tokenizer: Any) -> list[dict[str, Any]]:
    rows = []
    for text in texts.ROUND_TRIP:
        ids = tokenizer(text)["input_ids"]
        decoded = tokenizer.decode(ids, skip_special_tokens=True)
        rows.append(
            {
                "text": text,
                "tokens": len(ids),
                "decoded": decoded,
                "exact": decoded == text,
                "same_ignoring_case_and_spaces": "".join(decoded.lower().split()) == "".join(text.lower().split()),
            }
        )
    return rows


def _version(text: str) -> tuple[int, ...]:
    parts = []
    for piece in text.split(".")[:2]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)
