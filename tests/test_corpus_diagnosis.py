"""Diagnosis end to end on the corpus: real remote code, real releases, explanations from evidence.

`nox -s matrix` on five corpus fixtures in three pinned releases (4.50.3, 4.57.6, 5.24.0),
without bisect: every failure must be explained by a layer that reads evidence (the table
knows none of these breaks), name the right symbol or cause, and, where the release
sources can pin it, the exact first bad release that EXPECTED.toml records.
"""

from __future__ import annotations

import json

import pytest

from tests.helpers import cells_of, run_matrix
from tests.test_corpus import FIXTURES, TORCH, corpus, corpus_models  # noqa: F401  (a fixture)

RELEASES = {"tf-4.50": "4.50.3", "tf-4.57": "4.57.6", "tf-5.24": "5.24.0"}
MODELS = ("removed-method", "moved-import", "cache-none", "missing-package", "silent-nan")


def config_text(models: dict[str, str]) -> str:
    lines = []
    for env, version in RELEASES.items():
        lines += [f'[envs."{env}"]', f'transformers = "=={version}"', f'torch = "{TORCH}"', ""]
    for name in MODELS:
        lines += [f"[models.{name}]", f"path = {json.dumps(models[name])}", "trust_remote_code = true"]
        lines += [f'task = "{FIXTURES[name]["task"]}"', ""]
        lines += [f"{key} = {json.dumps(value)}" for key, value in corpus.FIXTURES[name].probe.items()]
    return "\n".join(lines)


@pytest.fixture(scope="module")
def diagnosed(corpus_models, tmp_path_factory, nox_envdir):  # noqa: F811
    folder = tmp_path_factory.mktemp("corpus-matrix")
    config = folder / "matrix.toml"
    config.write_text(config_text(corpus_models), encoding="utf-8")
    done, data = run_matrix(folder, config, nox_envdir)
    assert done.returncode == 0, done.stderr[-3000:]
    return done, data, cells_of(data)


@pytest.mark.e2e
def test_every_failure_is_explained_by_evidence(diagnosed):
    _, data, cells = diagnosed
    failing = [cell for cell in data["cells"] if cell["status"] == "fail"]
    assert len(failing) >= 7
    assert not data["unrecognised_failures"]
    assert all(cell["diagnosis"]["source"] != "table" for cell in failing)


@pytest.mark.e2e
def test_a_removed_method_is_found_in_the_release_sources_with_its_exact_first_release(diagnosed):
    _, _, cells = diagnosed
    record = FIXTURES["removed-method"]
    diagnosis = cells[("tf-4.57", "removed-method")]["diagnosis"]
    assert diagnosis["source"] == "symbol-history" and diagnosis["confidence"] == "high"
    assert diagnosis["id"] == "removed: Cache.get_usable_length"
    assert (diagnosis["introduced_in"], diagnosis["exact"]) == (record["first_bad"], True)
    assert diagnosis["last_good"] == record["last_good"]
    assert any("cache_utils.py" in line for line in diagnosis["evidence"])
    assert diagnosis["fixes"][0] == "pin transformers==4.50.3 (the newest release seen running it)"


@pytest.mark.e2e
def test_a_moved_import_gives_the_new_import_path(diagnosed):
    _, _, cells = diagnosed
    diagnosis = cells[("tf-4.57", "moved-import")]["diagnosis"]
    assert diagnosis["id"] == "moved: apply_chunking_to_forward -> transformers.pytorch_utils"
    assert (diagnosis["introduced_in"], diagnosis["exact"]) == (FIXTURES["moved-import"]["first_bad"], True)
    assert "upstream: from transformers.pytorch_utils import apply_chunking_to_forward" in diagnosis["fixes"]


@pytest.mark.e2e
def test_an_attribute_of_none_in_the_models_code_points_at_the_transformers_caller(diagnosed):
    _, _, cells = diagnosed
    diagnosis = cells[("tf-4.57", "cache-none")]["diagnosis"]
    assert diagnosis["source"] == "traceback"
    assert diagnosis["symbol"] == "transformers.generation.utils.GenerationMixin._sample"
    assert any(line.startswith("model frame: modeling_ember.py") for line in diagnosis["evidence"])
    assert cells[("tf-5.24", "cache-none")]["status"] == "pass"


@pytest.mark.e2e
def test_a_missing_package_says_to_declare_it_and_that_the_demand_changed(diagnosed):
    _, _, cells = diagnosed
    diagnosis = cells[("tf-4.57", "missing-package")]["diagnosis"]
    assert diagnosis["id"] == "missing package: einops"
    assert "transformers 4.50.3 ran it without einops" in diagnosis["cause"]
    assert 'declare it: requires = ["einops"] in [models.missing-package]' in diagnosis["fixes"]
    assert not any("pip install" in fix for fix in diagnosis["fixes"])


@pytest.mark.e2e
def test_non_finite_outputs_fail_the_cell(diagnosed):
    _, data, cells = diagnosed
    cell = cells[("tf-5.24", "silent-nan")]
    assert (cell["status"], cell["phase"], cell["error"]["type"]) == ("fail", "forward", "NonFiniteOutputs")
    assert cell["diagnosis"]["id"] == "non-finite outputs"
    served = {choice["model"]: choice["env"] for choice in data["recommendation"]["choices"]}
    assert served["silent-nan"] != "tf-5.24"
