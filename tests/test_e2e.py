"""End to end through nox: real uv envs, real transformers releases, real models.

A small matrix (4.40.2, latest, and an env that cannot be built) with two models, then the
shipped default matrix once, checked against the outcome DESIGN.md measured.
"""

from __future__ import annotations

import pytest

from matrix import exit_codes
from tests.helpers import ROOT, cells_of, run_matrix

pytestmark = pytest.mark.e2e

SMALL = """
[envs."tf-4.40"]
transformers = "==4.40.2"
torch = "==2.13.0"

[envs.latest]
transformers = "latest"
torch = "==2.13.0"

[envs.broken]
transformers = "==4.99.0"
torch = "==2.13.0"

[models.qwen2-tiny]
fixture = "qwen2-tiny"
task = "causal-lm"

[models.chatglm-legacy]
fixture = "chatglm-legacy"
task = "causal-lm"
trust_remote_code = true
shims = ["extract-past"]

[models.glm-tokenizer]
fixture = "chatglm-tokenizer-legacy"
task = "causal-lm"
trust_remote_code = true
shims = ["pad-padding-side+extract-past"]
"""


@pytest.fixture(scope="module")
def small_run(tmp_path_factory, nox_envdir):
    tmp = tmp_path_factory.mktemp("small")
    config = tmp / "small.toml"
    config.write_text(SMALL)
    return run_matrix(tmp, config, nox_envdir)


def test_small_matrix_publishes_and_exits_3_for_its_env_that_cannot_be_built(small_run):
    """Failing cells are data (exit 0 without the broken env); an env that could not be built
    is a probe failure a CI step can tell apart (3, through nox), and the table is still out."""
    done, data = small_run
    assert done.returncode == exit_codes.PROBE_FAILURE, done.stderr[-3000:]
    out = done.stdout + done.stderr
    assert "Recommendation:" in out and "Pin tf-4.40 (transformers 4.40.2)" in out
    assert "probe(env='broken'): skipped" in out
    assert "env(s) broken could not be built" in out


def test_small_matrix_statuses_phases_and_exceptions(small_run):
    _, data = small_run
    cells = cells_of(data)
    assert cells[("tf-4.40", "qwen2-tiny")]["status"] == "pass"
    assert cells[("latest", "qwen2-tiny")]["status"] == "pass"
    assert cells[("tf-4.40", "chatglm-legacy")]["status"] == "pass"
    assert cells[("tf-4.40", "chatglm-legacy+extract-past")]["status"] == "pass-with-shim"
    latest = cells[("latest", "chatglm-legacy")]
    assert latest["status"] == "fail" and latest["error"]["type"]
    assert cells[("latest", "chatglm-legacy+extract-past")]["status"] == "fail"
    tokenizer = cells[("latest", "glm-tokenizer")]
    assert (tokenizer["phase"], tokenizer["diagnosis"]["id"]) == ("tokenizer", "pad-padding-side")
    shimmed = cells[("latest", "glm-tokenizer+pad-padding-side+extract-past")]
    assert shimmed["phase"] == "forward", "the tokenizer shim applies before the tokenizer phase's own calls"
    old = cells[("tf-4.40", "glm-tokenizer+pad-padding-side+extract-past")]
    assert old["status"] == "pass-with-shim"
    assert old["fingerprint"]["tokens"] == cells[("tf-4.40", "chatglm-legacy")]["fingerprint"]["tokens"]
    for model in ("qwen2-tiny", "chatglm-legacy", "chatglm-legacy+extract-past"):
        broken = cells[("broken", model)]
        assert broken["status"] == "env-failed"
        assert "transformers==4.99.0" in broken["reason"]


def test_small_matrix_records_envs_and_outputs(small_run):
    _, data = small_run
    envs = {env["name"]: env for env in data["envs"]}
    assert envs["tf-4.40"]["transformers"] == "4.40.2"
    assert envs["latest"]["transformers"].split(".")[0] >= "5"
    assert envs["tf-4.40"]["packages"]["torch"].startswith("2.13.0")
    cells = cells_of(data)
    old = cells[("tf-4.40", "qwen2-tiny")]
    new = cells[("latest", "qwen2-tiny")]
    assert len(old["fingerprint"]["tokens"]) == 8
    assert old["fingerprint"]["tokens"] == new["fingerprint"]["tokens"]
    assert old["metrics"]["generate_median_s"] > 0 and old["metrics"]["peak_rss_increase_mb"] >= 0
    assert data["recommendation"]["kind"] == "single" and data["recommendation"]["envs"] == ["tf-4.40"]


def test_default_matrix_reproduces_the_measured_outcome(tmp_path, nox_envdir):
    done, data = run_matrix(tmp_path, ROOT / "matrix.toml", nox_envdir)
    assert done.returncode == 0, done.stderr[-3000:]
    cells = cells_of(data)
    for model in ("codebert-tiny", "qwen2-tiny", "minilm"):
        for env in ("tf-4.40", "tf-4.50", "latest"):
            assert cells[(env, model)]["status"] == "pass", (env, model, cells[(env, model)]["reason"])
    assert cells[("tf-4.40", "chatglm-legacy")]["status"] == "pass"
    broken = cells[("tf-4.50", "chatglm-legacy")]
    assert broken["status"] == "fail" and broken["phase"] == "generate"
    assert broken["error"]["type"] == "AttributeError"
    assert "_extract_past_from_model_output" in broken["error"]["message"]
    shimmed = cells[("tf-4.50", "chatglm-legacy+extract-past")]
    assert shimmed["status"] == "pass-with-shim"
    assert shimmed["fingerprint"]["tokens"] == cells[("tf-4.40", "chatglm-legacy")]["fingerprint"]["tokens"]
    assert cells[("latest", "chatglm-legacy")]["status"] == "fail"
    assert broken["diagnosis"]["id"] == "extract-past-removed" and broken["diagnosis"]["introduced_in"] == "4.49.0"
    assert cells[("latest", "chatglm-legacy")]["diagnosis"]["introduced_in"].startswith("5.")
    assert cells[("tf-4.50", "qwen2-tiny")]["drift"] == {
        "reference": "tf-4.40",
        "differs": False,
        "detail": "same outputs",
    }
    assert cells[("latest", "minilm")]["drift"]["reference"] == "tf-4.40"
    assert all(not cell["over_budget"] for cell in data["cells"]), "the default models meet the deployment's budgets"
    assert data["recommendation"]["envs"] == ["tf-4.40"]
    assert data["recommendation"]["bounds"]["chatglm-legacy"]["first_bad"] == "4.42.0"
    # Each break the bisect found is named, those between the run's envs from their windows.
    windows = (
        "works 4.40.2-4.41.2; 4.42.0 breaks (extract-past-returns-pair: ValueError in generate, exact); "
        "4.44.0 breaks (standardize-cache-format-removed: TypeError"
    )
    assert f"Bisect: chatglm-legacy {windows}" in done.stdout
    shimmed = "works 4.40.2-4.55.4; 4.56.0 breaks (config-num-hidden-layers: AttributeError in generate, exact)"
    assert f"- with extract-past: {shimmed}" in done.stdout
    assert "    cause: GenerationMixin._extract_past_from_model_output was removed" in done.stdout
    fixes = broken["diagnosis"]["fixes"]
    assert fixes[:2] == [
        "shim extract-past (its cell passes on 4.50.3)",
        "pin transformers==4.41.2 (the newest release that runs it)",
    ]
    assert cells[("latest", "chatglm-legacy")]["diagnosis"]["fixes"][0].startswith("no shim rescues it on 5.")
    markdown = (tmp_path / "results" / "COMPATIBILITY.md").read_text()
    assert "- diagnosis: extract-past-removed (since 4.49.0) (table, high)" in markdown
    assert "- cause: GenerationMixin.\\_extract\\_past" in markdown
    # One answer, one pin file: the release the search confirmed (below), not also the env's.
    assert sorted(p.name for p in (tmp_path / "results" / "pins").iterdir()) == ["transformers-4.41.2.txt"]
    assert data["recommendation"]["pin"]["transformers"] == "4.41.2"
    # The newest release that runs all four, confirmed by a probe of each on it (not an env of the run).
    lead = (
        "Pin transformers==4.41.2: the newest release that runs all 4 models as is"
        " (confirmed by a probe of each on 4.41.2)."
    )
    assert data["recommendation"]["summary"][0] == lead and lead in done.stdout
    newest = data["recommendation"]["newest"]
    models = ["codebert-tiny", "qwen2-tiny", "chatglm-legacy", "minilm"]
    assert newest["as_is"]["release"] == "4.41.2" and sorted(newest["as_is"]["confirm"]) == sorted(models)
    assert all(c["variant"] == "" and c["status"] == "pass" for c in newest["as_is"]["confirm"].values())
    shims = newest["with_shims"]
    assert shims["release"] == "4.55.4" and shims["choices"]["chatglm-legacy"] == "extract-past"
    assert shims["confirm"]["chatglm-legacy"]["variant"] == "extract-past"
    assert (
        "- with shims: transformers==4.55.4 is the newest release that runs all 4 models, with shim extract-past for"
        in done.stdout
    )
    assert newest["builds"] <= min(newest["bound"], newest["limit"])
    pinned = (tmp_path / "results" / "pins" / "transformers-4.41.2.txt").read_text().splitlines()
    assert "transformers==4.41.2" in pinned and "torch==2.13.0+cpu" in pinned
    blockers = {row["model"]: row for row in data["recommendation"]["blockers"]}
    assert blockers["chatglm-legacy"]["as_is"] == "4.41.2"
    assert blockers["chatglm-legacy"]["with_shims"] == "4.55.4 (extract-past)"
    # No env of the run has 4.42: the break is explained from the bisect's window (error and traceback end).
    assert blockers["chatglm-legacy"]["blocked_by"].startswith("4.42.0: extract-past-returns-pair (since 4.42.0)")
    assert blockers["chatglm-legacy"]["blocked_by"].endswith("fix: shim extract-past (runs it through 4.55.4)")
    assert blockers["minilm"]["blocked_by"].startswith("nothing up to 5.")
    assert "What blocks the upgrade past transformers==4.41.2:" in done.stdout
    assert "## What blocks the upgrade past transformers==4.41.2" in markdown
