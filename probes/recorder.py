"""What the model's own code was handed, read and loaded: the recorder of a diagnosis probe.

A break that names no symbol (a cache that is now an object where it was None, a config
value that became a dict, a buffer the new loading path leaves uninitialised) is explained
by comparing what the model's code saw in the last good and the first bad release. This
module records it, inside the cell's child, by real mechanism:

- calls into the model's own module: `sys.setprofile` sees every Python call; those whose
  code lives in the model's folder (remote code under `transformers_modules/`, or the
  native model's `transformers/models/<name>/`) get their arguments summarised (type,
  None-ness, length or shape, a Cache's class and length) for the first calls, the last
  call, and the return of the first;
- the config as the model's code read it: `PretrainedConfig.__getattribute__` is wrapped
  for the cell, and a read whose caller is the model's code is kept (value summarised;
  a missing attribute as such);
- the loaded state (`probes.state`).

Off in ordinary cells: `wanted(spec)` is false unless the cell spec says `record` or the
env var `MATRIX_RECORD=1` is set (the bisect asks it for the two releases of a window), and
then nothing is patched or hooked. The facts name files by their base name only.
"""

from __future__ import annotations

import os
import sys
from typing import Any, Callable, Dict, List, Optional

ENV_VAR = "MATRIX_RECORD"
FIRST_CALLS = 2  # argument summaries kept per function, besides the last call
MAX_FUNCTIONS = 200
_REMOTE = os.sep + "transformers_modules" + os.sep
_MISSING = object()  # a config attribute the model's code asked for and did not get
_NATIVE = os.sep + os.path.join("transformers", "models") + os.sep
_AUTO = _NATIVE + "auto" + os.sep  # the Auto factories are transformers' code, not a model's


def wanted(spec: Dict[str, Any]) -> bool:
    """Whether this cell records (a spec key the runner passes through, or the env var)."""
    return bool(spec.get("record")) or os.environ.get(ENV_VAR) == "1"


def summary(value: Any, depth: int = 2) -> Any:
    """A small JSON-able description of a value: what a diff between releases compares."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, (int, float)):
        return value if isinstance(value, int) or value == value else "nan"
    if isinstance(value, str):
        if os.path.isabs(value) or value.startswith("~"):  # a local path: its last part only
            return {"type": "path", "name": os.path.basename(value.rstrip("/\\"))}
        return value if len(value) <= 64 else {"type": "str", "len": len(value)}
    name = type(value).__name__
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        return {"type": name, "shape": list(value.shape), "dtype": str(value.dtype).replace("torch.", "")}
    if "Cache" in name and hasattr(value, "get_seq_length"):
        found: Dict[str, Any] = {"type": name, "cache": True}
        for key, read in (("len", lambda: len(value)), ("seq_length", lambda: int(value.get_seq_length()))):
            try:
                found[key] = read()
            except Exception as exc:  # noqa: BLE001 - what the cache says when asked is the fact
                found[key] = f"raises {type(exc).__name__}"
        return found
    if isinstance(value, (tuple, list)):
        items = [summary(item, depth - 1) for item in value[:2]] if depth > 0 else []
        return {"type": name, "len": len(value), "items": items}
    if isinstance(value, dict):
        keys = [str(key) for key in list(value)[:20]]
        if depth <= 0:
            return {"type": name, "keys": keys}
        entries = {str(key): summary(item, depth - 1) for key, item in list(value.items())[:12]}
        return {"type": name, "len": len(value), "items": entries}
    return {"type": name}


class Recorder:
    """Hooks the calls and config reads of one cell; `facts()` is what lands in the cell."""

    def __init__(self, phase: Callable[[], str]) -> None:
        self.phase = phase
        self.calls: Dict[tuple, Dict[str, Any]] = {}
        self.reads: Dict[tuple, Dict[str, Any]] = {}
        self.state: Dict[str, Any] = {}
        self.model_dir: Optional[str] = None
        self._is_model_file: Dict[str, bool] = {}
        self._config_class: Any = None
        self._original: Any = None
        self._had_own = False
        self._paused = False

    # -- hooks ---------------------------------------------------------------------------
    def start(self, transformers: Any) -> None:
        config_class = getattr(transformers, "PretrainedConfig", None) or transformers.PreTrainedConfig
        self._config_class, self._had_own = config_class, "__getattribute__" in config_class.__dict__
        original = config_class.__getattribute__
        recorder = self

        def __getattribute__(config: Any, name: str) -> Any:  # noqa: N807 - the hook's own name
            caller = sys._getframe(1).f_code.co_filename
            if recorder._paused or name.startswith("__") or not recorder._model_file(caller):
                return original(config, name)
            try:
                value = original(config, name)
            except AttributeError:
                recorder._read(caller, name, _MISSING)
                raise
            recorder._read(caller, name, value)
            return value

        self._original = original
        config_class.__getattribute__ = __getattribute__
        sys.setprofile(self._profile)

    def stop(self) -> None:
        sys.setprofile(None)
        if self._config_class is None:
            return
        if self._had_own:
            self._config_class.__getattribute__ = self._original
        else:
            del self._config_class.__getattribute__
        self._config_class = None

    def _model_file(self, filename: str) -> bool:
        known = self._is_model_file.get(filename)
        if known is None:
            if self.model_dir is not None:
                known = os.path.dirname(filename) == self.model_dir
            else:  # before the load names the model's class: remote code, or a native model's file
                known = _REMOTE in filename or (_NATIVE in filename and _AUTO not in filename)
            self._is_model_file[filename] = known
        return known

    def _read(self, filename: str, name: str, value: Any) -> None:
        blank = {"attribute": name, "file": os.path.basename(filename), "count": 0, "values": []}
        entry = self.reads.setdefault((filename, name), blank)
        entry["count"] += 1
        said = {"missing": True} if value is _MISSING else summary(value, 1)
        if said not in entry["values"] and len(entry["values"]) < 3:
            entry["values"].append(said)

    def _profile(self, frame: Any, event: str, arg: Any) -> None:
        if event not in ("call", "return"):
            return
        code = frame.f_code
        # module and class bodies, comprehensions and lambdas are not calls the model is handed
        if not code.co_flags & 0x01 or code.co_name.startswith("<") or not self._model_file(code.co_filename):
            return
        key = (code.co_filename, getattr(code, "co_qualname", code.co_name))
        entry = self.calls.get(key)
        if event == "return":
            if entry is not None and entry["count"] == 1 and "returned" not in entry:
                entry["returned"] = summary(arg)
            return
        if entry is None:
            if len(self.calls) >= MAX_FUNCTIONS:
                return
            entry = self.calls[key] = {
                "function": key[1],
                "file": os.path.basename(key[0]),
                "line": code.co_firstlineno,
                "phase": self.phase(),
                "order": len(self.calls),
                "count": 0,
                "first": [],
            }
        entry["count"] += 1
        arguments = _arguments(frame)
        if len(entry["first"]) < FIRST_CALLS:
            entry["first"].append(arguments)
        else:
            entry["last"] = arguments

    # -- results -------------------------------------------------------------------------
    def record_state(self, model: Any, location: str, torch: Any) -> None:
        """The loaded tensors (probes/state.py), read with both hooks paused: building the
        fresh instance to compare buffers with is not the model's code at work."""
        from probes.state import loaded_state

        hook = sys.getprofile()
        sys.setprofile(None)
        self._paused = True
        try:
            self.state = loaded_state(model, location, torch)
        except Exception as exc:  # noqa: BLE001 - the recorder must never fail the cell it watches
            self.state = {"error": f"{type(exc).__name__}: {str(exc)[:300]}"}
        finally:
            self._paused = False
            sys.setprofile(hook)

    def set_model(self, model: Any) -> None:
        """Narrow what counts as the model's code to the folder of the loaded model's class."""
        import inspect

        try:
            self.model_dir = os.path.dirname(inspect.getfile(type(model)))
        except (TypeError, OSError):
            return
        self._is_model_file.clear()

    def facts(self) -> Dict[str, Any]:
        def mine(filename: str) -> bool:
            return self.model_dir is None or os.path.dirname(filename) == self.model_dir

        calls = [entry for (filename, _), entry in self.calls.items() if mine(filename)]
        reads = [entry for (filename, _), entry in self.reads.items() if mine(filename)]
        return {
            "schema": 1,
            "model_folder": os.path.basename(self.model_dir or ""),
            "calls": sorted(calls, key=lambda entry: entry["order"]),
            "config_reads": sorted(reads, key=lambda entry: (entry["file"], entry["attribute"])),
            "state": self.state,
        }


def _arguments(frame: Any) -> Dict[str, Any]:
    """The frame's arguments at the call, summarised (`self` and `cls` left out)."""
    code = frame.f_code
    count = code.co_argcount + code.co_kwonlyargcount
    names: List[str] = list(code.co_varnames[:count])
    if code.co_flags & 0x04:  # *args
        names.append(code.co_varnames[count])
        count += 1
    if code.co_flags & 0x08:  # **kwargs
        names.append(code.co_varnames[count])
    values = frame.f_locals
    said: Dict[str, Any] = {}
    for name in names:
        if name in ("self", "cls") or name not in values:
            continue
        value = values[name]
        if code.co_flags & 0x08 and name == names[-1] and isinstance(value, dict):
            said.update({f"**{key}": summary(item) for key, item in list(value.items())[:20]})
        else:
            said[name] = summary(value)
    return said
