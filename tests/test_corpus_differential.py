"""Differential evidence on the corpus, end to end: the recorder in real releases, the diff named.

For each break EXPECTED.toml lists under `[fixtures.<name>.differential]`, the fixture's base
cell runs through the matrix's own runner in the break's last good and first bad release with
the recorder on (the cell spec key `record`, as the bisect asks it), and the diff of the two
records must name what EXPECTED.toml says: the changed argument, config value or tensor, its
first release, the confidence. The same cells without the key carry no recorder facts. The
probes' count and seconds are printed: they are the cost of differential evidence.

`record_of` is also how tests/corpus/recorded/ was written (the records the fast tests in
tests/test_differential.py read), from these same cells.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from matrix.diagnosis import differential
from tests.test_corpus import FIXTURES, corpus_models, release_env  # noqa: F401  (a fixture)

_PATH = re.compile(r'File "[^"]*?[/\\](site-packages|transformers_modules|probes)[/\\]')
CASES = [
    (name, first_bad, want)
    for name, record in FIXTURES.items()
    for first_bad, want in (record.get("differential") or {}).items()
]


def record_of(cell: dict[str, Any], release: str) -> dict[str, Any]:
    """What a differential diagnosis reads of one recorded cell, with no local path in it."""
    error = dict(cell.get("error") or {})
    if error.get("traceback"):
        error["traceback"] = _PATH.sub(lambda m: f'File "<{m.group(1)}>/', error["traceback"])
    return {
        "release": release,
        "status": cell["status"],
        "phase": cell.get("phase"),
        "error": error or None,
        "tokens": (cell.get("fingerprint") or {}).get("tokens"),
        "recorder": (cell.get("facts") or {}).get("recorder"),
    }


def run_cells(version: str, models: dict[str, str], cache: Path, folder: Path, record: bool) -> dict[str, Any]:
    """The models' base cells in `version`, through the runner, recorder on or off."""
    from matrix import proc
    from matrix.config import load
    from matrix.envs.plan import PLAN_FILE, runner_plan
    from matrix.envs.run import probe_env_vars
    from probes.record import cell_stem, write_json_atomic
    from tests.test_corpus import config_text

    python = release_env(version, cache)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "matrix.toml").write_text(config_text(version, models), encoding="utf-8")
    config = load(folder / "matrix.toml")
    env = f"tf-{version}"
    plan = runner_plan(config, env, folder / "run", dict(models))
    plan["cells"] = [dict(cell, record=True) if record else cell for cell in plan["cells"] if not cell["variant"]]
    write_json_atomic(folder / "run" / env / PLAN_FILE, plan)
    done = proc.run([python, "-m", "probes.runner", folder / "run" / env / PLAN_FILE], env=probe_env_vars(config))
    cells = {}
    for name in models:
        path = folder / "run" / env / f"{cell_stem(name, '')}.json"
        assert path.is_file(), f"no cell for {name} in {version}:\n{done.output[-3000:]}"
        cells[name] = json.loads(path.read_text(encoding="utf-8"))
    return cells


@pytest.mark.e2e
@pytest.mark.parametrize(("name", "first_bad", "want"), CASES, ids=[f"{n}-{v}" for n, v, _ in CASES])
def test_a_break_that_names_no_symbol_is_diagnosed_from_the_recorded_diff(
    name,
    first_bad,
    want,
    corpus_models,  # noqa: F811
    fixture_cache,
    tmp_path,
):
    models = {name: corpus_models[name]}
    start = time.perf_counter()
    records = {}
    for version in (want["last_good"], first_bad):
        cell = run_cells(version, models, fixture_cache, tmp_path / version, record=True)[name]
        records[version] = record_of(cell, version)
        assert records[version]["recorder"], f"{name} {version}: the recorder left no facts"
    seconds = time.perf_counter() - start
    bad = records[first_bad]
    found = differential.diagnose(
        records[want["last_good"]]["recorder"], bad["recorder"], want["last_good"], first_bad, bad["error"]
    )
    assert found is not None
    got = {"id": found.id, "cause": found.cause, "confidence": found.confidence}
    assert got == {key: want[key] for key in got}, json.dumps(found.to_dict(), indent=1)
    assert (found.source, found.introduced_in, found.last_good, found.exact) == (
        "differential",
        first_bad,
        want["last_good"],
        True,
    )
    print(f"differential probes for {name} {want['last_good']} -> {first_bad}: 2 cells in {seconds:.1f} s")


@pytest.mark.e2e
def test_an_ordinary_cell_records_nothing(corpus_models, fixture_cache, tmp_path):  # noqa: F811
    cells = run_cells("4.57.6", {"config-value": corpus_models["config-value"]}, fixture_cache, tmp_path, False)
    assert "recorder" not in cells["config-value"]["facts"]
    assert cells["config-value"]["status"] == "pass"
