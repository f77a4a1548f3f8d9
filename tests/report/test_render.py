"""Rendered reports against gold files (coverage.py style: the actual output is written
next to the gold file on mismatch; MATRIX_UPDATE_GOLD=1 rewrites the gold files)."""

from __future__ import annotations

import json
from pathlib import Path

import tabulate

from matrix.bisect.probe import outcome_of
from matrix.newest.confirm import tracks_of
from matrix.recommend import recommend
from matrix.report.render import markdown, matrix_json, pins, terminal, why_cells_fail, write_outputs
from matrix.results.aggregate import aggregate
from matrix.results.collect import Run
from probes.status import Status
from tests.helpers import check_gold, make_cell

GOLD = Path(__file__).parent / "gold"
WHEN = "2026-11-25T12:00:00+00:00"
MACHINE = {"hostname": "ci-box", "platform": "Linux-x86_64", "cpu_count": 2}


def sample(search: bool = False):
    envs = {
        "tf-4.40": {"packages": {"transformers": "4.40.2", "torch": "2.13.0+cpu", "tokenizers": "0.19.1"}},
        "tf-4.50": {"packages": {"transformers": "4.50.3", "torch": "2.13.0+cpu", "tokenizers": "0.21.4"}},
        "broken": {"status": "env-failed"},
    }
    gen = {"generate_median_s": 0.012}
    cells = [
        make_cell("tf-4.40", "qwen2-tiny", "pass", metrics=gen, machine=MACHINE),
        make_cell("tf-4.50", "qwen2-tiny", "pass", metrics=gen),
        make_cell("tf-4.40", "glm", "pass", metrics=gen),
        make_cell(
            "tf-4.50",
            "glm",
            "fail",
            phase="generate",
            reason="AttributeError in generate",
            error={"type": "AttributeError", "message": "'GLM' object has no attribute '_extract_past'\nmore"},
            log="tf-4.50/glm.log",
        ),
        make_cell("tf-4.40", "glm", "pass-with-shim", variant="extract-past", metrics=gen),
        make_cell("tf-4.50", "glm", "pass-with-shim", variant="extract-past", metrics=gen),
        make_cell(
            "tf-4.50",
            "hostile",
            "fail",
            phase="load",
            error={"type": "ValueError", "message": "bad | pipe <script>alert(1)</script>\x1b[31m red"},
        ),
        make_cell("tf-4.40", "hostile", "timeout", reason="no result within 5 s (killed)"),
    ]
    cells += [
        make_cell("broken", m, "env-failed", reason="env could not be built: error: no transformers==4.99")
        for m in ("qwen2-tiny", "glm", "hostile")
    ]
    matrix = aggregate(Run(Path("runs/r1"), envs, cells, ["qwen2-tiny", "glm", "hostile"]))
    return matrix, recommend(matrix, newest=release_search(matrix, cells[3]) if search else None)


def release_search(matrix, broken_glm):
    """What the release search records for the sample: glm broke at 4.45.0, hostile runs nowhere."""
    broke = {"from": "4.45.0", "to": "4.50.3", "outcome": "fail", "signature": outcome_of(broken_glm)}
    broke.update(error={"phase": "generate", "type": "AttributeError", "message": "no _extract_past"}, exact_from=True)
    windows = [{"from": "4.40.2", "to": "4.41.0", "outcome": "pass"}, broke]
    bisects = {
        "glm": {
            "windows": windows,
            "variants": {"extract-past": [{"from": "4.40.2", "to": "4.50.3", "outcome": "pass"}]},
        }
    }
    tracks = tracks_of(matrix, bisects, {}, matrix.models)
    line = ["4.40.2", "4.41.0", "4.45.0", "4.50.3"]
    return {
        "run": "r1",
        "line": line,
        "range": [line[0], line[-1]],
        "models": matrix.models,
        "not_bisected": ["qwen2-tiny"],
        "tracks": {m: {v: t.to_dict() for v, t in variants.items()} for m, variants in tracks.items()},
        "as_is": None,
        "with_shims": None,
        "excluded": [],
        "builds": 0,
        "probes": 0,
        "bound": 7,
        "limit": 7,
    }


def test_markdown_matches_gold():
    matrix, rec = sample(search=True)
    check_gold(GOLD / "COMPATIBILITY.md", markdown(matrix, rec, WHEN))


def test_terminal_matches_gold(monkeypatch):
    # tabulate pads emoji as two columns only when wcwidth is importable: fix it for the gold.
    monkeypatch.setattr(tabulate, "WIDE_CHARS_MODE", False)
    matrix, rec = sample(search=True)
    check_gold(GOLD / "terminal.txt", terminal(matrix, rec) + "\n")


def test_hostile_text_cannot_break_a_markdown_row():
    matrix, rec = sample()
    table = [line for line in markdown(matrix, rec, WHEN).splitlines() if line.startswith("| hostile")]
    assert len(table) == 1
    assert table[0].count(" | ") + table[0].count("|") - table[0].count("\\|") >= 0
    unescaped_pipes = table[0].replace("\\|", "").count("|")
    assert unescaped_pipes == len(matrix.envs) + 4  # model, source, envs, drift
    body = markdown(matrix, rec, WHEN)
    assert "<script>" not in body and "\x1b" not in body


def test_json_has_schema_meta_envs_cells_and_recommendation():
    matrix, rec = sample()
    data = json.loads(json.dumps(matrix_json(matrix, rec, WHEN)))
    assert data["schema"] == 1
    assert data["meta"]["run_id"] == "r1" and data["meta"]["generated_at"] == WHEN
    assert [e["name"] for e in data["envs"]] == ["tf-4.40", "tf-4.50", "broken"]
    assert data["envs"][0]["packages"]["tokenizers"] == "0.19.1"
    glm = next(c for c in data["cells"] if c["env"] == "tf-4.50" and c["model"] == "glm" and not c["variant"])
    assert glm["status"] == "fail" and glm["phase"] == "generate" and glm["error"]["type"] == "AttributeError"
    assert data["recommendation"]["kind"] == "single" and data["recommendation"]["envs"] == ["tf-4.40"]


def test_pins_are_exact_and_only_for_recommended_envs(tmp_path):
    matrix, rec = sample()
    assert list(pins(matrix, rec)) == ["tf-4.40"]
    stale = tmp_path / "pins" / "old-env.txt"
    stale.parent.mkdir()
    stale.write_text("x")
    write_outputs(tmp_path, matrix, rec, WHEN)
    assert sorted(p.name for p in (tmp_path / "pins").iterdir()) == ["tf-4.40.txt"]
    lines = (tmp_path / "pins" / "tf-4.40.txt").read_text().splitlines()
    assert [line for line in lines if not line.startswith("#")] == [
        "tokenizers==0.19.1",
        "torch==2.13.0+cpu",
        "transformers==4.40.2",
    ]
    assert Status.PASS.value in (tmp_path / "COMPATIBILITY.md").read_text()


def test_cells_that_share_one_cause_read_as_one_line_apart_from_failures():
    reason = "offline, not cached (org/m{} is not in the local HF cache)"
    cells = [
        make_cell(env, f"m{index}", Status.UNAVAILABLE, reason=reason.format(index))
        for env in ("a", "b")
        for index in range(3)
    ]
    cells.append(make_cell("a", "slow", Status.TIMEOUT, reason="no result within 5 s (killed)"))
    envs = {env: {"name": env, "packages": {"transformers": "4.40.2"}} for env in ("a", "b")}
    matrix = aggregate(Run(Path("runs/r"), envs, cells, ["m0", "m1", "m2", "slow"]))
    lines = why_cells_fail(matrix, [])
    todo = "raise the model's `timeout`, or find what hangs in its log"
    assert lines[2] == f"- timeout: no result within 5 s (killed) (slow on a); {todo}"
    assert lines[-2:] == [
        "No verdict (these say nothing about compatibility):",
        "- unavailable: offline, not cached (org/mN is not in the local HF cache) (m0, m1, m2 on a, b); "
        "reach the hub or fill the HF cache, then run again",
    ]
