"""The scheduled CI workflow (.github/workflows/compat-matrix.yml): valid, secure, and its
`run:` scripts work.

GitHub is not reachable from here, so the workflow is checked in three ways: against
GitHub's schema (check-jsonschema's vendored copy), by zizmor's offline audits, and by
executing every job's `run:` scripts literally with bash, on this machine, the way the
runners would: `list` once, `probe` once per listed session in its own copy of the project
(two machines), then `merge` on the downloaded shards. The `uses:` steps (checkout,
setup-python, artifacts) are emulated with file copies; the push is not run.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.helpers import ROOT, TWO_ENVS_ONE_MODEL

WORKFLOW = ROOT / ".github" / "workflows" / "compat-matrix.yml"
BIN = Path(sys.executable).parent
EXPRESSION = re.compile(r"\$\{\{\s*(.*?)\s*\}\}")
FULL_SHA_PIN = re.compile(r"^\s*-?\s*uses:\s*[\w.-]+/[\w./-]+@[0-9a-f]{40} # v\d+\.\d+\.\d+\s*$")


def load_workflow(path: Path = WORKFLOW) -> dict[str, Any]:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def tool(name: str) -> str:
    """The console script installed beside this Python (the [test] extra), else the one on PATH."""
    found = shutil.which(name, path=str(BIN)) or shutil.which(name)
    assert found, f"{name} is not installed: pip install -e '.[test]'"
    return found


def all_steps(workflow: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    return [(job_name, step) for job_name, job in workflow["jobs"].items() for step in job["steps"]]


# --- schema and static security checks -------------------------------------------------


def check_schema(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.github-workflows", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )


def test_workflow_matches_githubs_schema(tmp_path):
    done = check_schema(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    # The same check rejects a job without runs-on, so it is really looking at the file.
    broken = load_workflow()
    del broken["jobs"]["merge"]["runs-on"]
    (tmp_path / "broken.yml").write_text(yaml.safe_dump(broken), encoding="utf-8")
    assert check_schema(tmp_path / "broken.yml").returncode != 0


def zizmor_findings(path: Path) -> list[dict[str, Any]]:
    done = subprocess.run(
        [tool("zizmor"), "--offline", "--no-exit-codes", "--format", "json", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def describe(finding: dict[str, Any]) -> str:
    where = finding["locations"][0]["concrete"]["location"]["start_point"]["row"] + 1
    severity = finding["determinations"]["severity"]
    return f"{finding['ident']} ({severity}, line {where}): {finding['desc']}"


def test_zizmor_finds_nothing_of_medium_or_high_severity(tmp_path):
    findings = zizmor_findings(WORKFLOW)
    print("zizmor findings:", *[describe(f) for f in findings] or ["none"], sep="\n  ")
    serious = [describe(f) for f in findings if f["determinations"]["severity"] in ("Medium", "High")]
    assert not serious
    # Control: an input expanded inside a run script is reported as a high-severity injection.
    text = WORKFLOW.read_text(encoding="utf-8").replace('run: nox -s "$SESSION"', 'run: nox -s "${{ inputs.runner }}"')
    (tmp_path / "injected.yml").write_text(text, encoding="utf-8")
    injected = zizmor_findings(tmp_path / "injected.yml")
    assert any(f["ident"] == "template-injection" and f["determinations"]["severity"] == "High" for f in injected)


def test_actions_are_pinned_to_full_commit_shas_with_their_release():
    lines = [line for line in WORKFLOW.read_text(encoding="utf-8").splitlines() if re.match(r"^\s*-?\s*uses:", line)]
    assert len(lines) >= 4
    unpinned = [line.strip() for line in lines if not FULL_SHA_PIN.match(line)]
    assert not unpinned


def test_least_privilege_and_no_expressions_in_scripts():
    workflow = load_workflow()
    assert workflow["permissions"] == {}
    writes = {name for name, job in workflow["jobs"].items() if "write" in (job.get("permissions") or {}).values()}
    assert writes == {"merge"} and workflow["jobs"]["merge"]["permissions"] == {"contents": "write"}
    for job_name, step in all_steps(workflow):
        assert "${{" not in step.get("run", ""), f"{job_name}: '{step.get('name')}' expands an expression in its script"
        if step.get("uses", "").startswith("actions/checkout@"):
            assert step["with"]["persist-credentials"] is False, job_name


# --- executing the jobs' scripts ---------------------------------------------------------


class Runner:
    """Runs one job's steps as a runner would: `run:` scripts with bash and the step's env,
    each step with fresh GITHUB_OUTPUT / GITHUB_STEP_SUMMARY files; later steps run after a
    failure only when their `if:` asks for it. `uses:` steps are handed to `emulate`."""

    def __init__(self, workflow: dict[str, Any], job: str, workdir: Path, context: dict[str, Any], emulate):
        self.spec = workflow["jobs"][job]
        self.shell = workflow["defaults"]["run"]["shell"]
        self.job, self.workdir, self.context, self.emulate = job, workdir, context, emulate
        self.context["steps"] = {}
        self.summaries: list[str] = []
        self.outcomes: list[tuple[str, str]] = []

    def resolve(self, text: str) -> str:
        return EXPRESSION.sub(lambda match: self.lookup(match.group(1)), str(text))

    def lookup(self, expression: str) -> str:
        if expression.startswith("secrets."):
            return ""  # a secret this repository has not set reads as empty, as on GitHub
        value: Any = self.context
        for part in expression.split("."):
            assert isinstance(value, dict) and part in value, f"{self.job}: no value for ${{{{ {expression} }}}}"
            value = value[part]
        return str(value)

    def run(self, skip=lambda step: False) -> dict[str, str]:
        """Run every step; return the job's outputs."""
        failed = False
        for step in self.spec["steps"]:
            name = step.get("name") or step.get("uses") or step["run"]
            condition = str(step.get("if", ""))
            if skip(step) or (failed and "always()" not in condition and "!cancelled()" not in condition):
                self.outcomes.append((name, "skipped"))
                continue
            ok = self.run_step(step) if "run" in step else self.emulate(self, step)
            self.outcomes.append((name, "success" if ok else "failure"))
            failed = failed or not ok
        return {key: self.resolve(value) for key, value in (self.spec.get("outputs") or {}).items()}

    def run_step(self, step: dict[str, Any]) -> bool:
        files = self.workdir.parent / f"{self.workdir.name}-step-files"
        files.mkdir(exist_ok=True)
        output, summary = files / "output", files / "summary"
        output.write_text("")
        summary.write_text("")
        script = files / "script.sh"
        script.write_text(step["run"])
        env = self.base_env()
        env.update({key: self.resolve(value) for key, value in (step.get("env") or {}).items()})
        env.update(GITHUB_OUTPUT=str(output), GITHUB_STEP_SUMMARY=str(summary))
        assert self.shell == "bash"  # GitHub runs `shell: bash` as: bash --noprofile --norc -eo pipefail {0}
        done = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", str(script)],
            cwd=self.workdir,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
        )
        print(f"--- {self.job} / {step.get('name', step['run'])}: exit {done.returncode}")
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n")
        if "id" in step:
            self.context["steps"][step["id"]] = {"outputs": parse_outputs(output.read_text())}
        self.summaries.append(summary.read_text())
        return done.returncode == 0

    @staticmethod
    def base_env() -> dict[str, str]:
        """This machine's environment (uv needs SSL_CERT_FILE etc.) without our own knobs, with this
        Python's nox first on PATH and the fixture cache shared with the other tests."""
        env = {key: value for key, value in os.environ.items() if not key.startswith(("MATRIX_", "GITHUB_"))}
        env.update(PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}", MATRIX_CACHE=str(ROOT / ".cache"))
        return env


def parse_outputs(text: str) -> dict[str, str]:
    """`name=value` lines, as GitHub reads $GITHUB_OUTPUT (our steps write no multi-line values)."""
    outputs = {}
    for line in text.splitlines():
        assert "=" in line and "<<" not in line.split("=", 1)[0], f"unexpected output line {line!r}"
        key, value = line.split("=", 1)
        outputs[key] = value
    return outputs


def copy_project(target: Path, repository: bool = False) -> Path:
    """What actions/checkout leaves: the project's files (tracked and new, not ignored), here
    with the small config; with `repository`, a git repository whose first commit has no
    published results yet, as before the first scheduled run."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = ROOT / name
        if source.is_file() and not name.startswith("results/"):
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target / name)
    (target / "matrix.toml").write_text(TWO_ENVS_ONE_MODEL, encoding="utf-8")
    if repository:
        for command in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "before the first scheduled run"]):
            git(target, *command)
    return target


def git(where: Path, *args: str) -> str:
    identity = ["-c", "user.name=test", "-c", "user.email=test@example.invalid"]
    return subprocess.run(["git", *identity, *args], cwd=where, capture_output=True, text=True, check=True).stdout


class Artifacts:
    """upload-artifact / download-artifact as folder copies: one folder per artifact name."""

    def __init__(self, store: Path):
        self.store = store

    def __call__(self, runner: Runner, step: dict[str, Any]) -> bool:
        action = step["uses"].split("@")[0]
        options = {key: runner.resolve(value) for key, value in (step.get("with") or {}).items()}
        if action == "actions/upload-artifact":
            source = runner.workdir / options["path"]
            if source.is_dir():
                shutil.copytree(source, self.store / options["name"])
        elif action == "actions/download-artifact":
            for artifact in sorted(self.store.iterdir()):
                if fnmatch.fnmatch(artifact.name, options["pattern"]):
                    shutil.copytree(artifact, runner.workdir / options["path"] / artifact.name, dirs_exist_ok=True)
        else:
            # a cache miss, as on a fresh runner
            assert action in ("actions/checkout", "actions/setup-python", "actions/cache"), f"no emulation for {action}"
        return True


def crash_cell(store: Path, env: str, model: str) -> None:
    """Turn a passing cell of an uploaded shard into a crash: what a later week's run would bring."""
    (path,) = store.glob(f"*/runs/*/{env}/{model}.json")
    data = json.loads(path.read_text())
    data.update(status="crashed", reason="killed by signal 9 (injected by the test)")
    path.write_text(json.dumps(data))


@pytest.mark.e2e
def test_jobs_list_probe_on_two_machines_and_merge(tmp_path):
    workflow = load_workflow()
    github = {
        "run_id": "4242",
        "run_attempt": "1",
        "server_url": "https://github.com",
        "repository": "example/transformers-matrix",
    }
    artifacts = Artifacts(tmp_path / "artifacts")
    artifacts.store.mkdir()

    lister = Runner(workflow, "list", copy_project(tmp_path / "list"), {"github": github}, emulate=artifacts)
    listed = lister.run()
    sessions = json.loads(listed["sessions"])
    assert sessions == ["probe(env='tf-4.40')", "probe(env='tf-4.50')"]
    assert re.fullmatch(r"\d{8}T\d{6}Z-gh4242-1", listed["run-id"])

    probe_job = workflow["jobs"]["probe"]
    assert probe_job["strategy"]["matrix"]["session"] == "${{ fromJSON(needs.list.outputs.sessions) }}"
    assert probe_job["strategy"]["fail-fast"] is False
    for number, session in enumerate(sessions):
        machine = copy_project(tmp_path / f"machine-{number}")
        context = {"github": github, "matrix": {"session": session}, "needs": {"list": {"outputs": listed}}}
        probe = Runner(workflow, "probe", machine, context, emulate=artifacts)
        probe.run()
        assert all(outcome == "success" for _, outcome in probe.outcomes), probe.outcomes
        assert list((machine / "shard" / "runs").iterdir()) == [machine / "shard" / "runs" / listed["run-id"]]
    names = sorted(path.name for path in artifacts.store.iterdir())
    assert names == ["shard-probe_env__tf-4.40__", "shard-probe_env__tf-4.50__"]

    merger = copy_project(tmp_path / "merge-machine", repository=True)
    context: dict[str, Any] = {"github": github, "needs": {"list": {"outputs": listed}}}

    def merge(fail_on_regression: str) -> Runner:
        git(merger, "clean", "-fdxq")  # a fresh runner: the branch as pushed, nothing else
        context["inputs"] = {"fail_on_regression": fail_on_regression}
        runner = Runner(workflow, "merge", merger, context, emulate=artifacts)
        runner.run(skip=lambda step: re.search(r"\bgit\b.* push ", step.get("run", "")))  # nothing leaves here
        return runner

    # First publication, with --fail-on-regression: nothing to compare with, so it passes.
    first = merge("true")
    assert [outcome for _, outcome in first.outcomes] == ["success"] * 8 + ["skipped"], first.outcomes
    data = json.loads((merger / "results" / "matrix.json").read_text())
    cells = {(cell["env"], cell["model"]): cell["status"] for cell in data["cells"]}
    assert cells == {("tf-4.40", "qwen2-tiny"): "pass", ("tf-4.50", "qwen2-tiny"): "pass"}
    table = (merger / "results" / "COMPATIBILITY.md").read_text()
    assert "qwen2-tiny" in table and "tf-4.40" in table and "tf-4.50" in table
    assert table in first.summaries
    committed = git(merger, "show", "--name-only", "--format=%s", "HEAD").split()
    assert committed[:3] == ["Compatibility", "matrix", "from"]
    assert set(committed[4:]) == {
        "results/COMPATIBILITY.md",
        "results/matrix.json",
        "results/index.html",
        "results/history.jsonl",
        "results/pins/tf-4.50.txt",
        "results/badge.svg",
        "results/badge.json",
        "results/release-line.svg",
    }, "the newest env that runs every model is pinned; the run folder and shards stay out of git"

    # A later run where tf-4.50 crashes, without the flag (a scheduled run): reported, not failed.
    crash_cell(artifacts.store, "tf-4.50", "qwen2-tiny")
    second = merge("")
    assert all(outcome == "success" for _, outcome in second.outcomes[:-1]), second.outcomes
    assert "new failure: tf-4.50/qwen2-tiny" in "".join(second.summaries)

    # Then tf-4.40 crashes too, with --fail-on-regression: the step fails after publishing,
    # and the summary and the commit still happen.
    crash_cell(artifacts.store, "tf-4.40", "qwen2-tiny")
    third = merge("true")
    outcomes = dict(third.outcomes)
    assert outcomes["Merge the shards, bisect, search the release line and publish results/"] == "failure"
    assert outcomes["Job summary"] == outcomes["Commit the published files"] == "success"
    assert "new failure: tf-4.40/qwen2-tiny" in "".join(third.summaries)
    history = (merger / "results" / "history.jsonl").read_text().splitlines()
    assert len(history) == 3 and git(merger, "status", "--porcelain", "--", "results") == ""
    assert len(git(merger, "log", "--format=%H").split()) == 4
