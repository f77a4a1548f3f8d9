"""The traceback layer: frames read from recorded tracebacks, and the transformers caller compared.

Frame parsing is checked on a traceback this Python produces and on one the probe recorded
(a real 4.50 failure of the ChatGLM fixture). The comparison runs on real wheels from the
shared cache (skipped, saying why, without them) and on synthetic releases that pin down
each outcome: a caller that passes new keywords, no model frame, an unchanged caller.
"""

from __future__ import annotations

import traceback

import pytest

from matrix.diagnosis.failure import classify_file, parse_frames, read_failure
from matrix.diagnosis.frames import function_at, split_frames, traceback_history
from matrix.diagnosis.symbols.sources import SourceShelf
from tests.helpers import fake_release

SITE = "/work/main/.nox/probe-env-tf-4-50/lib/python3.11/site-packages"
MODEL = "/root/.cache/huggingface/modules/transformers_modules/chatglm-legacy-b06b5aca0ca0/modeling_chatglm.py"
RECORDED = f"""Traceback (most recent call last):
  File "/work/main/probes/cell.py", line 78, in run
    self._run_phases()
  File "/work/main/probes/tasks.py", line 50, in generate
    output = cell.timed_calls("generate", lambda: model.generate(**batch, **kwargs), torch, repeats=3)
             ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/torch/utils/_contextlib.py", line 124, in decorate_context
    return func(*args, **kwargs)
           ^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/transformers/generation/utils.py", line 2326, in generate
    result = self._sample(
             ^^^^^^^^^^^^^
  File "{SITE}/transformers/generation/utils.py", line 3292, in _sample
    model_kwargs = self._update_model_kwargs_for_generation(
                   ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{MODEL}", line 299, in _update_model_kwargs_for_generation
    model_kwargs["past_key_values"] = self._extract_past_from_model_output(
                                      ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "{SITE}/torch/nn/modules/module.py", line 1967, in __getattr__
    raise AttributeError(
AttributeError: 'ChatGLMForConditionalGeneration' object has no attribute '_extract_past_from_model_output'
"""


def test_frames_of_a_recorded_probe_traceback_are_classified():
    frames = parse_frames(RECORDED)
    assert [(f.kind, f.function) for f in frames] == [
        ("harness", "run"),
        ("harness", "generate"),
        ("internal", "decorate_context"),
        ("transformers", "generate"),
        ("transformers", "_sample"),
        ("model", "_update_model_kwargs_for_generation"),
        ("internal", "__getattr__"),
    ]
    sample = frames[4]
    assert (sample.module, sample.line, sample.source) == (
        "transformers.generation.utils",
        3292,
        "model_kwargs = self._update_model_kwargs_for_generation(",
    )
    model, caller, inside = split_frames(frames)
    assert (model.line, caller.function, inside) == (299, "_sample", False)


def test_frames_of_a_live_traceback_skip_caret_lines_and_earlier_chained_tracebacks():
    def inner(value):
        return value.shape

    def outer():
        try:
            {}["missing"]
        except KeyError:
            return inner(None)

    try:
        outer()
    except AttributeError:
        text = traceback.format_exc()
    assert "During handling" in text
    frames = parse_frames(text)
    assert [f.function for f in frames] == [
        "test_frames_of_a_live_traceback_skip_caret_lines_and_earlier_chained_tracebacks",
        "outer",
        "inner",
    ]
    assert frames[-1].source == "return value.shape"
    assert all(f.kind == "model" for f in frames)  # a test file is nobody's library


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (
            "/venv/lib/python3.11/site-packages/transformers/models/llama/__init__.py",
            ("transformers", "transformers.models.llama"),
        ),
        ("/usr/lib/python3/dist-packages/transformers/cache_utils.py", ("transformers", "transformers.cache_utils")),
        ("/venv/lib/python3.11/site-packages/accelerate/hooks.py", ("internal", None)),
        ("/usr/lib/python3.11/json/decoder.py", ("internal", None)),
        ("<frozen importlib._bootstrap>", ("internal", None)),
        ("/work/main/probes/runner.py", ("harness", None)),
        ("/work/main/probes/fixtures/chatglm.py", ("model", None)),
        ("/home/me/.cache/huggingface/modules/transformers_modules/x/modeling_x.py", ("model", None)),
    ],
)
def test_whose_code_a_file_is(path, expected):
    assert classify_file(path) == expected


def traceback_through(*frames: tuple[str, int, str, str]) -> str:
    lines = ["Traceback (most recent call last):"]
    for file, line, function, source in frames:
        lines += [f'  File "{file}", line {line}, in {function}', f"    {source}"]
    return "\n".join(lines) + "\n"


def failure(message: str, *frames: tuple[str, int, str, str]):
    return read_failure({"type": "AttributeError", "message": message, "traceback": traceback_through(*frames)})


# --- real wheels (conftest's `shelf`) ---------------------------------------------------------


def test_a_tuple_cache_seen_only_in_the_models_code_points_at_the_changed_caller(shelf):
    site = "/env/lib/python3.11/site-packages"
    found = traceback_history(
        failure(
            "'str' object has no attribute 'shape'",
            (f"{site}/transformers/generation/utils.py", 1914, "generate", "result = self._sample("),
            (f"{site}/transformers/generation/utils.py", 2651, "_sample", "outputs = self("),
            (f"{site}/torch/nn/modules/module.py", 1773, "_wrapped_call_impl", "return self._call_impl(*a)"),
            ("/hf/modules/transformers_modules/glm/modeling_chatglm.py", 201, "get_masks", "n = past[0][0].shape[0]"),
        ),
        "4.41.2",
        "4.42.4",
        shelf,
        failed_in="4.42.4",
    )
    assert (found.source, found.id, found.confidence) == (
        "traceback",
        "caller changed: GenerationMixin._sample",
        "medium",
    )
    assert found.symbol == "transformers.generation.utils.GenerationMixin._sample"
    assert found.evidence[0] == "model frame: modeling_chatglm.py:201 in get_masks: n = past[0][0].shape[0]"
    assert "transformers/generation/utils.py:2651 in _sample" in found.evidence[1]
    assert any("outputs.logits[:, -1, :].clone()" in line for line in found.evidence)
    assert found.fixes[-1] == "pin transformers<4.42.4"


# --- synthetic releases ---------------------------------------------------------------------

GENERATION_V1 = """
class GenerationMixin:
    def generate(self, x):
        cache = None
        return self.step(x, cache=cache)


class Other:
    def generate(self):
        return None
"""
GENERATION_V2 = """
class GenerationMixin:
    def generate(self, x, position=0):
        cache = DynamicCache()
        return self.step(x, cache=cache, position=position)


class Other:
    def generate(self):
        return None
"""
PACKAGE = "/env/lib/python3.11/site-packages/transformers"


@pytest.fixture
def releases(tmp_path) -> SourceShelf:
    fake_release(tmp_path, "1.0.0", {"generation.py": GENERATION_V1})
    fake_release(tmp_path, "1.1.0", {"generation.py": GENERATION_V2})
    return SourceShelf(tmp_path)


def test_the_caller_now_passes_new_keywords_and_another_object(releases):
    found = traceback_history(
        failure(
            "'DynamicCache' object has no attribute 'append'",
            (f"{PACKAGE}/generation.py", 5, "generate", "return self.step(x, cache=cache, position=position)"),
            ("/fixtures/model/modeling_m.py", 40, "step", "cache.append(x)"),
        ),
        "1.0.0",
        "1.1.0",
        releases,
    )
    assert found.id == "caller changed: GenerationMixin.generate"
    assert "signature: 1.0.0 generate(self, x) -> 1.1.0 generate(self, x, position=)" in found.evidence
    assert "calls step(): +position=" in found.evidence
    assert any("+cache = DynamicCache()" in line and "-cache = None" in line for line in found.evidence)
    assert found.fixes[0] == "upstream: adapt the model's step to what GenerationMixin.generate does in 1.1.0"


def test_in_a_probe_scripts_phase_the_code_outside_transformers_is_the_scripts(releases):
    frames = (
        (f"{PACKAGE}/generation.py", 5, "generate", "return self.step(x, cache=cache, position=position)"),
        ("/team/checks/rag.py", 12, "step", "cache.append(x)"),
    )
    error = {"type": "AttributeError", "message": "'DynamicCache' object has no attribute 'append'"}
    scripted = read_failure({**error, "traceback": traceback_through(*frames)}, "probe:rag")
    found = traceback_history(scripted, "1.0.0", "1.1.0", releases)
    assert found.cause.startswith("Probe script rag's code fails at rag.py:12 in step")
    assert found.evidence[0] == "probe script frame: rag.py:12 in step: cache.append(x)"
    assert found.fixes[0] == "upstream: adapt the probe script's step to what GenerationMixin.generate does in 1.1.0"


def test_without_a_model_frame_the_innermost_transformers_frame_is_compared(releases):
    found = traceback_history(
        failure(
            "'Config' object has no attribute 'layers'", (f"{PACKAGE}/generation.py", 4, "generate", "cache = ...")
        ),
        "1.0.0",
        "1.1.0",
        releases,
    )
    assert found.id == "changed: GenerationMixin.generate"
    assert found.evidence[0] == "failed inside transformers: transformers/generation.py:4 in generate: cache = ..."
    assert found.fixes == ["pin transformers<1.1.0"]


def test_an_unchanged_caller_is_low_confidence_and_names_the_models_line(tmp_path):
    fake_release(tmp_path, "1.0.0", {"generation.py": GENERATION_V1})
    fake_release(tmp_path, "1.1.0", {"generation.py": GENERATION_V1})
    found = traceback_history(
        failure(
            "'NoneType' object has no attribute 'shape'",
            (f"{PACKAGE}/generation.py", 5, "generate", "return self.step(x, cache=cache)"),
            ("/fixtures/model/modeling_m.py", 40, "step", "cache.shape"),
        ),
        "1.0.0",
        "1.1.0",
        SourceShelf(tmp_path),
    )
    assert (found.id, found.confidence) == ("model code: modeling_m.py:40", "low")


def test_the_frames_line_tells_same_named_methods_apart(releases):
    release = releases.release("1.0.0")
    frames = parse_frames(traceback_through((f"{PACKAGE}/generation.py", 10, "generate", "return None")))
    assert function_at(release, frames[0]).owner == "Other"
    frames = parse_frames(traceback_through((f"{PACKAGE}/generation.py", 4, "generate", "cache = None")))
    assert function_at(release, frames[0]).owner == "GenerationMixin"


def test_no_transformers_frame_or_no_sources_says_nothing(releases):
    only_model = failure("'NoneType' object has no attribute 'shape'", ("/m/modeling_m.py", 3, "forward", "x.shape"))
    assert traceback_history(only_model, "1.0.0", "1.1.0", releases) is None
    in_transformers = failure("boom", (f"{PACKAGE}/generation.py", 4, "generate", "cache = None"))
    assert traceback_history(in_transformers, "1.0.0", "0.0.1", releases) is None
    assert "0.0.1" in releases.unavailable
