"""matrix.json has a published schema (matrix/schema/matrix.schema.json, shipped with the
package) that every matrix.json this project publishes follows: the committed one, the ones
these tests publish, and (tests/conftest.py) every one any test publishes into its tmp_path.
"""

from __future__ import annotations

import copy
import json
import tomllib
from importlib.resources import files

from matrix.__main__ import main
from tests.helpers import ROOT
from tests.schema_check import SCHEMA_FILE, problems, problems_below, published_below
from tests.test_published_privacy import OTHER, THIS, env_folder, failing_cell, passing_cell


def published(tmp_path, capsys) -> dict:
    """A report of a small run: one model passes, one fails in one env and needs a split."""
    results = tmp_path / "results"
    run = results / "runs" / "20261202T120000Z-sch"
    for env, release, machine in (("tf-4.40", "4.40.2", THIS), ("tf-4.50", "4.50.3", OTHER)):
        env_folder(run, env, release, machine, {}, ["qwen", "glm"])
        passing_cell(env, "qwen", machine).write(run)
        if env == "tf-4.40":
            passing_cell(env, "glm", machine).write(run)
        else:
            failing_cell(env, "glm", machine, [f"{ROOT}/probes/cell.py"], "").write(run)
    assert main(["report", str(run), "--results", str(results)]) == 0
    capsys.readouterr()
    return json.loads((results / "matrix.json").read_text(encoding="utf-8"))


def test_the_schema_ships_with_the_package_and_is_a_valid_schema():
    text = (files("matrix") / SCHEMA_FILE).read_text(encoding="utf-8")
    assert json.loads(text)["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    shipped = pyproject["tool"]["setuptools"]["package-data"]["matrix"]
    assert SCHEMA_FILE.replace("matrix.schema.json", "*.json") in shipped
    assert problems({}) != [], "the validator is really looking"


def test_the_committed_matrix_json_follows_the_schema():
    data = json.loads((ROOT / "results" / "matrix.json").read_text(encoding="utf-8"))
    assert problems(data) == []


def test_a_published_report_follows_the_schema_and_a_broken_one_does_not(tmp_path, capsys):
    data = published(tmp_path, capsys)
    assert problems(data) == []
    assert published_below(tmp_path) == [tmp_path / "results" / "matrix.json"]
    assert problems_below(tmp_path) == []
    assert data["recommendation"]["pin"] == {"transformers": "4.40.2", "evidence": "env tf-4.40", "shims": {}}
    # What a script relies on is checked: each of these breaks it.
    failing = next(i for i, cell in enumerate(data["cells"]) if cell["status"] != "pass")
    broken = {
        "/recommendation: 'pin' is a required property": lambda d: d["recommendation"].pop("pin"),
        "/recommendation/pin: None is not of type 'object'": lambda d: d["recommendation"].update(pin=None),
        "/cells/0/status": lambda d: d["cells"][0].update(status="passed"),
        f"/cells/{failing}/reason: '' should be non-empty": lambda d: d["cells"][failing].update(reason=""),
        "/schema: 1 was expected": lambda d: d.update(schema=2),
        "/envs/0: 'built' is a required property": lambda d: d["envs"][0].pop("built"),
    }
    for expected, breaks in broken.items():
        changed = copy.deepcopy(data)
        breaks(changed)
        found = problems(changed)
        assert found and any(problem.startswith(expected.split(":")[0]) for problem in found), (expected, found)
        if ":" in expected:
            assert expected in found, found
