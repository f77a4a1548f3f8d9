"""The release workflow (.github/workflows/release.yml): a tag builds the wheel and sdist,
checks them and publishes them with PyPI trusted publishing.

Checked offline like the scheduled workflow (tests/test_workflow.py): GitHub's schema,
zizmor, actionlint, pins; and its build job's `run:` scripts executed here, literally, on a
copy of the checkout: the real `uv build`, `twine check` and a fresh env with the wheel. The
publish job itself (the OIDC exchange with PyPI) cannot run anywhere but on GitHub.
"""

from __future__ import annotations

import re
import subprocess
import zipfile
from pathlib import Path

import pytest

from matrix import __version__
from tests.helpers import ROOT
from tests.test_workflow import (
    FULL_SHA_PIN,
    Artifacts,
    Runner,
    check_schema,
    copy_project,
    describe,
    load_workflow,
    tool,
    zizmor_findings,
)

RELEASE = ROOT / ".github" / "workflows" / "release.yml"
PUBLISH_ACTION = "pypa/gh-action-pypi-publish@dc37677b2e1c63e2034f94d8a5b11f265b73ba33"


def test_release_workflow_matches_githubs_schema_and_zizmor_and_actionlint_find_nothing():
    done = check_schema(RELEASE)
    assert done.returncode == 0, done.stdout + done.stderr
    findings = zizmor_findings(RELEASE)
    print("zizmor findings:", *[describe(f) for f in findings] or ["none"], sep="\n  ")
    assert not [describe(f) for f in findings if f["determinations"]["severity"] in ("Medium", "High")]
    linted = subprocess.run([tool("actionlint"), str(RELEASE)], capture_output=True, text=True, timeout=120)
    assert linted.returncode == 0, linted.stdout + linted.stderr


def test_a_tag_publishes_with_trusted_publishing_and_nothing_else_may_write():
    workflow = load_workflow(RELEASE)
    assert workflow[True] == {"push": {"tags": ["v*"]}}  # YAML reads the key `on` as True
    assert workflow["permissions"] == {}
    build, publish = workflow["jobs"]["build"], workflow["jobs"]["publish"]
    assert build["permissions"] == {"contents": "read"}
    assert publish["permissions"] == {"id-token": "write"}, "the OIDC token, and no other right"
    assert publish["needs"] == "build" and publish["environment"]["name"] == "pypi"
    (upload,) = [step for step in publish["steps"] if step["uses"].startswith("pypa/")]
    assert upload["uses"] == PUBLISH_ACTION and "with" not in upload, "no password or token: trusted publishing"
    lines = [line for line in RELEASE.read_text(encoding="utf-8").splitlines() if re.match(r"^\s*-?\s*uses:", line)]
    assert len(lines) == 5 and all(FULL_SHA_PIN.match(line) for line in lines), lines
    assert not any("${{" in step.get("run", "") for job in workflow["jobs"].values() for step in job["steps"])


def build_job(tmp_path: Path, tag: str, drop_package: str = "") -> Runner:
    """The build job's steps on a copy of the checkout, tagged `tag` (the tools come from the
    test extra, which is what the install step gives a runner); `drop_package` is left out
    of pyproject.toml's package list."""
    project = copy_project(tmp_path / f"release-{tag}", repository=True)
    if drop_package:
        pyproject = project / "pyproject.toml"
        text = pyproject.read_text(encoding="utf-8")
        assert f'"{drop_package}", ' in text
        pyproject.write_text(text.replace(f'"{drop_package}", ', "", 1), encoding="utf-8")
    artifacts = Artifacts(tmp_path / f"artifacts-{tag}")
    artifacts.store.mkdir()
    runner = Runner(load_workflow(RELEASE), "build", project, {"github": {"ref_name": tag}}, emulate=artifacts)
    runner.run(skip=lambda step: step.get("name") == "Install the build tools")
    return runner


@pytest.mark.e2e
def test_the_build_job_builds_and_checks_a_wheel_and_an_sdist_of_the_tagged_version(tmp_path):
    runner = build_job(tmp_path, f"v{__version__}")
    assert [outcome for _, outcome in runner.outcomes] == ["success"] * 2 + ["skipped"] + ["success"] * 5
    assert "PASSED" in "".join(runner.stdout), "twine's verdict on each file"
    dist = runner.workdir / "dist"
    names = sorted(path.name for path in dist.iterdir() if path.suffix in (".whl", ".gz"))
    wheel = f"transformers_matrix-{__version__}-py3-none-any.whl"
    assert names == [wheel, f"transformers_matrix-{__version__}.tar.gz"]
    uploaded = (tmp_path / f"artifacts-v{__version__}" / "dist").iterdir()
    stored = sorted(path.name for path in uploaded if path.suffix in (".whl", ".gz"))
    assert stored == names, "uploaded for the publish job"
    with zipfile.ZipFile(dist / wheel) as opened:
        assert "matrix/schema/matrix.schema.json" in opened.namelist()


@pytest.mark.e2e
def test_a_tag_that_is_not_the_packages_version_stops_the_release(tmp_path):
    runner = build_job(tmp_path, "v99.0.0")
    outcomes = dict(runner.outcomes)
    assert outcomes["The tag names the package's version"] == "failure"
    assert outcomes["Build the wheel and the sdist"] == "skipped"
    assert f"::error title=Tag and version differ::the tag is v99.0.0, pyproject.toml says version {__version__}" in (
        "".join(runner.stdout)
    )


@pytest.mark.e2e
def test_a_wheel_without_one_of_the_packages_is_not_released(tmp_path):
    runner = build_job(tmp_path, f"v{__version__}", drop_package="matrix.config")
    outcomes = dict(runner.outcomes)
    check = "Check the files a team's install needs, and the console script in a fresh env"
    assert outcomes["Build the wheel and the sdist"] == "success" and outcomes[check] == "failure"
    (line,) = [line for line in "".join(runner.stdout).splitlines() if line.startswith("::error")]
    assert line.startswith("::error title=Missing from the wheel::matrix/config/__init__.py matrix/config/"), line
