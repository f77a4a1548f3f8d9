"""In-process benchmarks (pytest-benchmark): the host pipeline at scale.

1,000 models x 30 envs of generated cell files: reading them back (collect), then
aggregate + judge + classify + recommend + render. Deselected in the normal test run (marker
`bench`); run them with `python -m pytest -m bench tests/report/test_bench_report.py`.
Figures, not assertions: the machine is shared.
"""

from __future__ import annotations

import random

import pytest

from matrix.diagnosis import diagnose, load_known_breaks
from matrix.judge.drift import judge_outputs, with_judgements
from matrix.recommend import recommend
from matrix.report.render import markdown, matrix_json, terminal
from matrix.results.aggregate import aggregate
from matrix.results.collect import collect
from probes.status import Status
from tests.helpers import make_cell

MODELS, ENVS = 1000, 30
MESSAGES = [
    ("AttributeError", "generate", "'M' object has no attribute '_extract_past_from_model_output'"),
    ("TypeError", "tokenizer", "T._pad() got an unexpected keyword argument 'padding_side'"),
    ("KeyError", "load", "'rope_scaling' missing in /tmp/x{n}/config.json"),
]


@pytest.fixture(scope="module")
def big_run(tmp_path_factory):
    """Write 30,000 cell files (a real run folder) once for the module."""
    rng = random.Random(7)
    run_dir = tmp_path_factory.mktemp("big") / "runs" / "bench"
    for env in range(ENVS):
        for model in range(MODELS):
            if rng.random() < 0.8:
                cell = make_cell(
                    f"e{env:02d}",
                    f"m{model:04d}",
                    Status.PASS,
                    metrics={"generate_median_s": 0.02, "peak_rss_increase_mb": 100.0},
                    fingerprint={"tokens": [model % 7, env % 3, 1, 2]},
                )
            else:
                kind, phase, message = rng.choice(MESSAGES)
                error = {"type": kind, "message": message.format(n=model), "traceback": ""}
                cell = make_cell(f"e{env:02d}", f"m{model:04d}", Status.FAIL, phase=phase, error=error)
            cell.write(run_dir)
    return run_dir


def report(run):
    matrix = aggregate(run)
    matrix = with_judgements(matrix, judge_outputs(matrix, {}, {}))
    unknown = diagnose(matrix, load_known_breaks())
    rec = recommend(matrix)
    return markdown(matrix, rec, "now", unknown), terminal(matrix, rec), matrix_json(matrix, rec, "now", unknown)


@pytest.mark.bench
def test_collect_30000_cell_files(benchmark, big_run):
    run = benchmark.pedantic(collect, args=(big_run,), rounds=1, iterations=1)
    assert len(run.cells) == MODELS * ENVS


@pytest.mark.bench
def test_aggregate_and_render_1000_models_by_30_envs(benchmark, big_run):
    run = collect(big_run)
    text, _, data = benchmark.pedantic(report, args=(run,), rounds=3, iterations=1)
    assert len(data["cells"]) == MODELS * ENVS and text.startswith("# Compatibility matrix")
