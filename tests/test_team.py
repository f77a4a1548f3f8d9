"""A team's own repository, end to end: examples/team copied to a folder outside this
checkout and run with `MATRIX_CONFIG=<its config> nox -s matrix`, in real envs.

The copy gets two more probe scripts: one whose output changes between releases (the
keys a model's config serialises) and one that calls a method transformers removed in
4.49, so it raises in newer envs. What it checks: results and history land beside the
config; the team's break wins over the built-in one; the team's shim rescues its model
and is verified by outputs; load_kwargs reach from_pretrained and the dtype the model got
is recorded; probe outputs are compared for drift, a probe's exception is classified, and
a probe's metric is held to its budget.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess

import pytest

from matrix.diagnosis.failure import read_failure
from matrix.judge.drift import SAME, difference, over_budget
from tests.helpers import ROOT, make_cell, run_nox

# The tests that build real envs or run the whole `nox -s matrix` are marked e2e by conftest's hook.

TEAM = ROOT / "examples" / "team"

CONFIG_KEYS = '''"""What the model's config writes out: keys come and go with releases."""


def probe(model, tokenizer, ctx):
    """The sorted keys of config.to_dict()."""
    return {"keys": sorted(model.config.to_dict())}
'''

LEGACY_CACHE = '''"""Our cache inspection, written against transformers 4.3x internals."""


def probe(model, tokenizer, ctx):
    """Read the cache the way our old serving code did."""
    batch = tokenizer("hello there", return_tensors="pt")
    outputs = model(**batch, use_cache=True)
    past = model._extract_past_from_model_output(outputs)
    return {"layers": len(past)}
'''

LEFT_PADDING = '''"""A tokenizer fix, applied before the model exists."""


def left_padding(model, tokenizer):
    """Pad on the left, as our batch server does."""
    assert model is None, "a tokenizer-stage shim runs before the model loads"
    tokenizer.padding_side = "left"


left_padding.stage = "tokenizer"
'''

EXTRA_MODEL = """
[models.decoder]
fixture = "qwen2-tiny"
task = "causal-lm"
probes = ["checks/legacy_cache.py", "checks/chat_history.py"]
shims = ["fixes/tokenizer.py:left_padding"]
"""


@pytest.fixture(scope="module")
def team_run(tmp_path_factory):
    """The copy, its run's output and its matrix.json (nox's venvs in a folder of their own)."""
    outside = tmp_path_factory.mktemp("team-repo")
    repo = outside / "team"
    shutil.copytree(TEAM, repo, ignore=shutil.ignore_patterns("results", "__pycache__"))
    (repo / "checks" / "config_keys.py").write_text(CONFIG_KEYS)
    (repo / "checks" / "legacy_cache.py").write_text(LEGACY_CACHE)
    (repo / "fixes" / "tokenizer.py").write_text(LEFT_PADDING)
    config = repo / "matrix.toml"
    text = config.read_text()
    for old, new in (
        ('probes = ["checks/retrieval.py"]', 'probes = ["checks/retrieval.py", "checks/config_keys.py"]'),
        ('"retrieval.search_median_s" = "<= 0.5"', '"retrieval.search_median_s" = "<= 0.000001"'),
    ):
        assert old in text, f"examples/team/matrix.toml no longer has {old}"
        text = text.replace(old, new)
    config.write_text(text + EXTRA_MODEL)
    published = ROOT / "results" / "matrix.json"
    before = published.stat().st_mtime_ns if published.exists() else None
    env = {key: value for key, value in os.environ.items() if not key.startswith("MATRIX_")}
    env.update(MATRIX_CONFIG=str(config), MATRIX_CACHE=str(ROOT / ".cache"))
    done = run_nox(outside / "nox", "-s", "matrix", env=env)
    matrix_file = repo / "results" / "matrix.json"
    assert matrix_file.exists(), done.stdout[-3000:] + done.stderr[-3000:]
    after = published.stat().st_mtime_ns if published.exists() else None
    return repo, done, json.loads(matrix_file.read_text()), (before, after)


def cell(data: dict, env: str, row: str) -> dict:
    model, _, variant = row.partition("+")
    return next(c for c in data["cells"] if (c["env"], c["model"], c["variant"]) == (env, model, variant))


def test_results_and_history_land_beside_the_config(team_run):
    repo, done, _, (before, after) = team_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (repo / "results" / "COMPATIBILITY.md").is_file()
    history = (repo / "results" / "history.jsonl").read_text().splitlines()
    assert len(history) == 1
    # a latency the team's probe measured with ctx.time keeps its samples for the regression gate
    searched = json.loads(history[0])["cells"]["tf-4.40/search"]["timings"]["retrieval.search"]
    # the probe script's timing reached the history: its samples kept, or set aside as
    # disturbed when other processes kept the CPU (a loaded box)
    assert searched["samples"] or searched["disturbed"], searched
    assert before == after, "running another config must not touch the checkout's published results"


def test_the_teams_break_wins_over_the_built_in_one(team_run):
    _, _, data, _ = team_run
    found = cell(data, "tf-4.50", "assistant")
    assert found["status"] == "fail" and found["diagnosis"]["id"] == "assistant-extract-past"
    assert found["diagnosis"]["source"] == "table"
    assert "vendored from ChatGLM" in found["diagnosis"]["cause"]


def test_the_teams_shim_rescues_its_model_verified_by_outputs(team_run):
    _, _, data, _ = team_run
    rescued = cell(data, "tf-4.50", "assistant+restore-extract-past")
    assert rescued["status"] == "pass-with-shim", rescued["reason"]
    assert rescued["drift"] == {"reference": "tf-4.40", "differs": False, "detail": SAME}
    # The three-turn chat of its own probe script is part of what was compared.
    replies = rescued["fingerprint"]["probes"]["chat_history"]["replies"]
    assert len(replies) == 3
    assert replies == cell(data, "tf-4.40", "assistant")["fingerprint"]["probes"]["chat_history"]["replies"]
    assert "restore-extract-past" in " ".join(cell(data, "tf-4.50", "assistant")["diagnosis"]["fixes"])


def test_a_tokenizer_stage_shim_of_the_teams_runs_before_the_model_loads(team_run):
    _, _, data, _ = team_run
    shimmed = cell(data, "tf-4.40", "decoder+left-padding")
    assert shimmed["status"] == "pass-with-shim", shimmed["reason"]
    assert shimmed["drift"]["differs"] is False


def test_load_kwargs_reach_from_pretrained_and_the_dtype_got_is_recorded(team_run):
    _, _, data, _ = team_run
    assistant = cell(data, "tf-4.40", "assistant")  # low_cpu_mem_usage needs accelerate there: `requires`
    assert assistant["status"] == "pass", assistant["reason"]
    assert assistant["loaded"] == {
        "load_kwargs": {"low_cpu_mem_usage": "True", "torch_dtype": "torch.float32"},
        "dtype": "float32",
        "model_device": "cpu",
    }
    assert cell(data, "tf-4.40", "search")["loaded"]["load_kwargs"] == {}, "by default nothing is passed"


def test_what_a_model_requires_is_in_the_pins_of_the_env_that_serves_it(team_run):
    repo, _, data, _ = team_run
    assert data["recommendation"]["envs"] == ["tf-4.40"]
    pins = (repo / "results" / "pins" / "tf-4.40.txt").read_text()
    assert "Serves: search, assistant, decoder" in pins
    assert any(line.startswith("accelerate==") for line in pins.splitlines())


def test_probe_outputs_metrics_budgets_and_drift(team_run):
    _, _, data, _ = team_run
    newest = cell(data, "tf-4.57", "search")
    assert newest["status"] == "pass"
    assert newest["metrics"]["retrieval.recall_at_1"] == 1.0  # real MiniLM weights rank every query right
    assert newest["fingerprint"]["probes"]["retrieval"]["ranking"][0][0] == 0
    assert [b["budget"] for b in newest["over_budget"]] == ["retrieval.search_median_s"]
    assert newest["drift"]["differs"] and "probe config_keys" in newest["drift"]["detail"]


def test_a_probe_scripts_exception_is_classified(team_run):
    _, _, data, _ = team_run
    passed = cell(data, "tf-4.40", "decoder")["fingerprint"]["probes"]
    assert passed["legacy_cache"]["layers"] > 0
    assert passed["chat_history"]["turns"] == 6, "three turns through the chat template, with history"
    broken = cell(data, "tf-4.57", "decoder")
    assert broken["status"] == "fail" and broken["phase"] == "probe:legacy_cache"
    assert broken["error"]["type"] == "AttributeError"
    # Diagnosed like any failure: the built-in table knows this removal (the team's own entry
    # for it names only its assistant, so it does not speak for this model).
    assert (broken["diagnosis"]["id"], broken["diagnosis"]["introduced_in"]) == ("extract-past-removed", "4.49.0")


def test_probe_outputs_are_compared_within_the_drift_tolerances():
    settings = {"drift_max_abs": 1e-4, "drift_min_cosine": 0.9999}

    def with_outputs(env: str, outputs: dict):
        return make_cell(env, "m", "pass", fingerprint={"probes": {"p": outputs}})

    ref = with_outputs("a", {"ranking": [0, 1], "scores": [0.5, 0.25], "text": "hi"})
    assert (
        difference(ref, with_outputs("b", {"ranking": [0, 1], "scores": [0.50001, 0.25], "text": "hi"}), settings)
        == SAME
    )
    assert "output 'scores'" in difference(
        ref, with_outputs("b", {"ranking": [0, 1], "scores": [0.6, 0.25], "text": "hi"}), settings
    )
    assert "output 'ranking'" in difference(
        ref, with_outputs("b", {"ranking": [1, 0], "scores": [0.5, 0.25], "text": "hi"}), settings
    )
    assert "output 'text'" in difference(
        ref, with_outputs("b", {"ranking": [0, 1], "scores": [0.5, 0.25], "text": "ho"}), settings
    )
    assert "missing" in difference(ref, with_outputs("b", {"ranking": [0, 1], "scores": [0.5, 0.25]}), settings)


def test_metric_budgets_bound_what_a_probe_reports():
    spec = {"metric_budgets": {"p.recall": [">=", 0.9], "p.search_median_s": ["<=", 0.1]}}
    good = make_cell("a", "m", "pass", metrics={"p.recall": 0.95, "p.search_median_s": 0.05})
    assert over_budget(good, spec, {}) == []
    bad = make_cell("a", "m", "pass", metrics={"p.recall": 0.5})
    assert [(m["budget"], m["value"]) for m in over_budget(bad, spec, {})] == [
        ("p.recall", 0.5),
        ("p.search_median_s", None),
    ]


def test_an_import_errors_own_install_advice_names_the_missing_package():
    """transformers 4.40's words when low_cpu_mem_usage meets an env without accelerate."""
    message = "Using `low_cpu_mem_usage=True` or a `device_map` requires Accelerate: `pip install accelerate`"
    symbol = read_failure({"type": "ImportError", "message": message, "traceback": ""}, "load").symbol
    assert symbol is not None and (symbol.kind, symbol.names) == ("missing-package", ("accelerate",))
    quoted = "requires bitsandbytes: `pip install -U 'bitsandbytes>=0.43.1'`"
    symbol = read_failure({"type": "ImportError", "message": quoted}, "load").symbol
    assert symbol is not None and symbol.names == ("bitsandbytes",)
    assert read_failure({"type": "ValueError", "message": message}, "load").symbol is None


def test_team_files_are_read_as_python_reads_them(tmp_path):
    """A BOM is fine, and the last top-level `def probe` is the one an import leaves."""
    from matrix.team_code import TeamCodeError, probe_script

    (tmp_path / "bom.py").write_bytes(b"\xef\xbb\xbfdef probe(model, tokenizer, ctx):\n    return {}\n")
    assert probe_script(tmp_path, "bom.py").name == "bom"
    (tmp_path / "redefined.py").write_text(
        "def probe(model):\n    pass\n\n\ndef probe(model, tokenizer, ctx):\n    return {}\n"
    )
    assert probe_script(tmp_path, "redefined.py").function == "probe"
    (tmp_path / "broken_last.py").write_text(
        "def probe(model, tokenizer, ctx):\n    return {}\n\n\ndef probe(model):\n    pass\n"
    )
    with pytest.raises(TeamCodeError, match=r"def probe\(model\) must take \(model, tokenizer, ctx\)"):
        probe_script(tmp_path, "broken_last.py")


PROBE_OUTPUTS = """
import json, sys, torch
from probes import team
from probes.observe import NonFiniteOutputs, Observations

path = sys.argv[1]
cell = Observations({"max_new_tokens": 4})
cell.phase = "probe:outputs"
entry = {"name": "outputs", "path": path, "function": "probe", "sha256": "0" * 64}
try:
    team.run_probe(cell, entry, torch.nn.Linear(2, 2), None, torch)
    raised = ""
except NonFiniteOutputs as error:
    raised = str(error)
print(json.dumps({"outputs": cell.fingerprint["probes"]["outputs"], "metrics": cell.metrics, "raised": raised}))
"""

OUTPUTS_SCRIPT = """
import numpy



def probe(model, tokenizer, ctx):
    torch = ctx.torch
    ctx.metric("score", numpy.float32(0.5))
    with ctx.timer("block"):
        pass
    return {
        "ids": torch.tensor([[1, 2], [3, 4]]),
        "half": torch.tensor([0.5, 0.25], dtype=torch.bfloat16),
        "numpy": numpy.arange(3),
        "nested": ({"text": "hi", "flag": True}, None),
        "logits": torch.ones(2, 5000),
        "dtype": str(ctx.dtype),
    }
"""


def test_probe_outputs_become_plain_data_and_large_tensors_a_summary(tmp_path, tf440_python):
    """Inside a real env: tensors, numpy and nested values as JSON data, a large tensor as
    its shape, first values and statistics, metrics under the probe's name; NaN fails."""
    script = tmp_path / "outputs.py"
    script.write_text(OUTPUTS_SCRIPT)
    runner = tmp_path / "run.py"
    runner.write_text(PROBE_OUTPUTS)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([tf440_python, runner, script], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.splitlines()[-1])
    outputs = got["outputs"]
    assert outputs["ids"] == [[1, 2], [3, 4]] and outputs["half"] == [0.5, 0.25] and outputs["numpy"] == [0, 1, 2]
    assert outputs["nested"] == [{"text": "hi", "flag": True}, None] and outputs["dtype"] == "torch.float32"
    summary = outputs["logits"]
    assert summary["summary_of"] == [2, 5000] and len(summary["first"]) == 256 and summary["mean"] == 1.0
    assert got["metrics"]["outputs.score"] == 0.5 and "outputs.block_s" in got["metrics"] and not got["raised"]

    script.write_text("def probe(model, tokenizer, ctx):\n    return {'scores': [0.5, float('nan')]}\n")
    done = subprocess.run([tf440_python, runner, script], env=env, capture_output=True, text=True, timeout=300)
    raised = json.loads(done.stdout.splitlines()[-1])["raised"]
    assert raised == "non-finite outputs in probe:outputs: 1 of 2 values of output 'scores' are NaN, 0 are inf"
