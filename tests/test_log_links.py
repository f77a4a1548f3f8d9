"""Logs linked from the published page: with MATRIX_LOGS_URL (set by the scheduled workflow to
the run that holds the `cell-logs` artifact) a cell's details link there, in the browser;
without it, or with anything but an https URL, nothing is linked."""

from __future__ import annotations

import pytest

from matrix.__main__ import main
from matrix.report.log_links import LOGS_FOLDER, LOGS_URL, log_place, logs_url
from probes.public import host_alias
from tests.helpers import ROOT
from tests.report.test_browser import browser, visit  # noqa: F401  (the module's headless Chromium)
from tests.test_published_privacy import OTHER, THIS, env_folder, failing_cell, passing_cell

RUN_URL = "https://github.com/example/team/actions/runs/4242"


def published_page(tmp_path, capsys):
    results = tmp_path / "results"
    run = results / "runs" / "20261202T130000Z-logs"
    for env, release, machine in (("tf-4.40", "4.40.2", THIS), ("tf-4.50", "4.50.3", OTHER)):
        env_folder(run, env, release, machine, {}, ["qwen"])
        if env == "tf-4.40":
            passing_cell(env, "qwen", machine).write(run)
        else:
            failing_cell(env, "qwen", machine, [f"{ROOT}/probes/cell.py"], "").write(run)
        (run / env / "qwen.log").write_text(f"{env} on {machine['hostname']}: {ROOT}/probes/cell.py:12: warning\n")
    assert main(["report", str(run), "--results", str(results)]) == 0
    capsys.readouterr()
    return results


@pytest.mark.parametrize(
    ("given", "expected"),
    [(RUN_URL, RUN_URL), ("", None), ("javascript:alert(1)", None), ("https://x/y z", None), ("http://x/y", None)],
)
def test_only_an_https_url_is_taken(monkeypatch, given, expected):
    monkeypatch.setenv(LOGS_URL, given)
    assert logs_url() == expected
    assert log_place("r1", "tf-4.40/qwen.log") == (
        f"`tf-4.40/qwen.log` in the artifact `cell-logs` of {RUN_URL}" if expected else "`runs/r1/tf-4.40/qwen.log`"
    )


def test_a_cells_details_link_the_runs_logs_artifact(browser, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.setenv(LOGS_URL, RUN_URL)
    results = published_page(tmp_path, capsys)
    markdown = (results / "COMPATIBILITY.md").read_text(encoding="utf-8")
    assert f"- log: `tf-4.50/qwen.log` in the artifact `cell-logs` of {RUN_URL}" in markdown.splitlines()
    seen = visit(browser, results / "index.html")
    seen.cell("tf-4.50/qwen").click()
    link = seen.page.locator("#details a")
    assert link.count() == 1
    assert link.get_attribute("href") == RUN_URL
    assert link.text_content() == "the cell-logs artifact of this workflow run"
    assert seen.details()["log"] == "tf-4.50/qwen.log", "the file to look for inside the artifact"
    seen.assert_quiet()
    # The logs the workflow uploads as that artifact: the run's, as published.
    logs = sorted(str(path.relative_to(results / LOGS_FOLDER)) for path in (results / LOGS_FOLDER).rglob("*"))
    assert logs == ["tf-4.40", "tf-4.40/qwen.log", "tf-4.50", "tf-4.50/qwen.log"]
    text = (results / LOGS_FOLDER / "tf-4.50" / "qwen.log").read_text(encoding="utf-8")
    assert text == f"tf-4.50 on {host_alias(OTHER['hostname'])}: probes/cell.py:12: warning\n"


def test_without_a_logs_url_nothing_is_linked(browser, tmp_path, capsys, monkeypatch):  # noqa: F811
    monkeypatch.delenv(LOGS_URL, raising=False)
    results = published_page(tmp_path, capsys)
    seen = visit(browser, results / "index.html")
    seen.cell("tf-4.50/qwen").click()
    assert seen.page.locator("#details a").count() == 0
    assert "logs" not in seen.details()
    assert not (results / LOGS_FOLDER).exists(), "a local run has its run folder"
    seen.assert_quiet()
