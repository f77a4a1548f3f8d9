"""The scheduled CI workflow (.github/workflows/compat-matrix.yml): valid, secure, and its
`run:` scripts work.

GitHub is not reachable from here, so the workflow is checked in four ways: against
GitHub's schema (check-jsonschema's vendored copy), by zizmor's offline audits, by
actionlint, and by executing every job's `run:` scripts literally with bash, on this
machine, the way the runners would: `list` once, `probe` once per listed session in its own
copy of the project (two machines), then `merge` on the downloaded shards, three weeks in a
row, each in a fresh clone of a bare repository that stands in for the one on GitHub: the
report goes to its gh-pages branch (pushed for real), the history comes back from there.
The `uses:` steps (checkout, setup-python, artifacts, caches) are emulated with file copies.
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


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([tool("actionlint"), str(path)], capture_output=True, text=True, timeout=120)


def test_actionlint_finds_nothing(tmp_path):
    done = actionlint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr
    # Control: a job that needs a job that does not exist is reported.
    text = WORKFLOW.read_text(encoding="utf-8").replace("needs: [list, probe]", "needs: [list, probes]")
    (tmp_path / "broken.yml").write_text(text, encoding="utf-8")
    broken = actionlint(tmp_path / "broken.yml")
    assert broken.returncode == 1 and '"probes"' in broken.stdout, broken.stdout


STARTER = ROOT / "matrix" / "starter" / ".github" / "workflows" / "transformers-matrix.yml"


def test_the_starter_workflow_init_writes_passes_the_same_checks():
    """The weekly workflow `transformers-matrix init` writes into a team's repository."""
    done = check_schema(STARTER)
    assert done.returncode == 0, done.stdout + done.stderr
    assert not [describe(f) for f in zizmor_findings(STARTER) if f["determinations"]["severity"] in ("Medium", "High")]
    linted = actionlint(STARTER)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    uses = [line for line in STARTER.read_text(encoding="utf-8").splitlines() if re.match(r"^\s*-?\s*uses:", line)]
    assert len(uses) == 3 and all(FULL_SHA_PIN.match(line) for line in uses), uses


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
        self.stdout: list[str] = []
        self.outcomes: list[tuple[str, str]] = []
        # The workflow's and the job's `env:`, under every step's own.
        self.env = {key: self.resolve(value) for key, value in (workflow.get("env") or {}).items()}
        self.env.update({key: self.resolve(value) for key, value in (self.spec.get("env") or {}).items()})

    def resolve(self, text: str) -> str:
        return EXPRESSION.sub(lambda match: self.lookup(match.group(1)), str(text))

    def lookup(self, expression: str) -> str:
        """A context path (`github.run_id`), or `a || 'literal'`: the first that is set."""
        if "||" in expression:
            for part in (part.strip() for part in expression.split("||")):
                if part.startswith("'") and part.endswith("'"):
                    return part[1:-1]
                found = self.find(part)
                if found:
                    return str(found)
            return ""
        found = self.find(expression)
        assert found is not None, f"{self.job}: no value for ${{{{ {expression} }}}}"
        return str(found)

    def find(self, path: str) -> Any:
        if path.startswith("secrets."):
            return ""  # a secret this repository has not set reads as empty, as on GitHub
        value: Any = self.context
        for part in path.split("."):
            if not isinstance(value, dict) or part not in value:
                return None
            value = value[part]
        return value

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
        env = {**self.base_env(), **self.env}
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
        self.stdout.append(done.stdout)
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
            if any(char in options["path"] for char in "*?["):
                # Files matched by a pattern are stored below their least common ancestor.
                found = sorted(path for path in runner.workdir.glob(options["path"]) if path.is_file())
                if found:
                    root = Path(os.path.commonpath([path.parent for path in found]))
                    for path in found:
                        target = self.store / options["name"] / path.relative_to(root)
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copyfile(path, target)
            elif source.is_dir():
                shutil.copytree(source, self.store / options["name"], dirs_exist_ok=True)
        elif action == "actions/download-artifact":
            for artifact in sorted(self.store.iterdir()):
                if fnmatch.fnmatch(artifact.name, options["pattern"]):
                    shutil.copytree(artifact, runner.workdir / options["path"] / artifact.name, dirs_exist_ok=True)
        else:
            # a cache miss, as on a fresh runner
            assert action in ("actions/checkout", "actions/setup-python", "actions/cache"), f"no emulation for {action}"
        return True


def headline(report: str) -> str:
    """COMPATIBILITY.md down to its first section: the answer a reader sees first."""
    return report.split("\n## ", 1)[0]


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

    # The repository on GitHub: its working branch as pushed, and (after the first run) the
    # pages branch the merge job publishes to. Each merge job is a fresh runner: a new clone.
    origin = tmp_path / "origin.git"
    git(tmp_path, "init", "-q", "--bare", str(origin))
    seed = copy_project(tmp_path / "seed", repository=True)
    git(seed, "push", "-q", str(origin), "HEAD:refs/heads/main")
    context: dict[str, Any] = {
        "github": {**github, "token": "not-a-real-token"},
        "needs": {"list": {"outputs": listed}},
    }
    logs_url = "https://github.com/example/transformers-matrix/actions/runs/4242"

    def merge(number: int, fail_on_regression: str) -> tuple[Runner, Path]:
        merger = tmp_path / f"merge-machine-{number}"
        git(tmp_path, "clone", "-q", "--branch", "main", str(origin), str(merger))
        context["inputs"] = {"fail_on_regression": fail_on_regression}
        runner = Runner(workflow, "merge", merger, context, emulate=artifacts)
        runner.run()
        return runner, merger

    def pages(*args: str) -> str:
        return git(origin, *args)

    # First publication, with --fail-on-regression: nothing to compare with, so it passes.
    first, merger = merge(1, "true")
    assert [outcome for _, outcome in first.outcomes] == ["success"] * 11, first.outcomes
    assert "this is the first publication" in "".join(first.stdout)
    data = json.loads((merger / "results" / "matrix.json").read_text())
    cells = {(cell["env"], cell["model"]): cell["status"] for cell in data["cells"]}
    assert cells == {("tf-4.40", "qwen2-tiny"): "pass", ("tf-4.50", "qwen2-tiny"): "pass"}
    table = (merger / "results" / "COMPATIBILITY.md").read_text()
    assert "qwen2-tiny" in table and "tf-4.40" in table and "tf-4.50" in table
    # The same answer as a local `nox -s matrix` of the same config: the headline, the pin,
    # the windows and the blockers.
    local = copy_project(tmp_path / "local")
    done = subprocess.run(
        [sys.executable, "-m", "nox", "-s", "matrix"], cwd=local, env=Runner.base_env(),
        capture_output=True, text=True, timeout=900,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    here = json.loads((local / "results" / "matrix.json").read_text())["recommendation"]
    assert here["pin"] is not None
    for key in ("pin", "route", "summary", "bounds", "blockers", "kind", "envs"):
        assert data["recommendation"][key] == here[key], key
    assert headline(table) == headline((local / "results" / "COMPATIBILITY.md").read_text())
    assert table in first.summaries, "the job summary is the published report, headline first"
    assert logs_url in (merger / "results" / "index.html").read_text(), "the page links the logs artifact"
    stored = artifacts.store / "cell-logs"
    logs = sorted(str(path.relative_to(stored)) for path in stored.rglob("*.log"))
    assert logs == ["tf-4.40/qwen2-tiny.log", "tf-4.50/qwen2-tiny.log"], "named as the cells' log fields"
    for log in stored.rglob("*.log"):
        assert str(tmp_path) not in log.read_text() and str(ROOT) not in log.read_text(), f"{log} names a local folder"
    # Published to the pages branch, not the working branch; the run folders stay out.
    assert pages("log", "--format=%s", "main").splitlines() == ["before the first scheduled run"]
    assert pages("log", "--format=%s", "gh-pages").splitlines() == [f"Compatibility matrix from {logs_url}"]
    published = set(pages("ls-tree", "-r", "--name-only", "gh-pages").split())
    assert {".nojekyll", "COMPATIBILITY.md", "matrix.json", "index.html", "history.jsonl", "badge.svg"} <= published
    assert not [name for name in published if name.startswith(("runs/", "logs/"))], published
    assert any(name.startswith("pins/") for name in published), "the pin file of the answer"
    for name in published:
        text = pages("show", f"gh-pages:{name}")
        assert str(tmp_path) not in text and str(ROOT) not in text, f"{name} names a local folder"

    # A later run where tf-4.50 crashes, without the flag (a scheduled run): reported and
    # annotated, not failed; the history came back from the pages branch.
    crash_cell(artifacts.store, "tf-4.50", "qwen2-tiny")
    second, merger = merge(2, "")
    assert all(outcome == "success" for _, outcome in second.outcomes), second.outcomes
    where = f"- log: `tf-4.50/qwen2-tiny.log` in the artifact `cell-logs` of {logs_url}"
    assert where in (merger / "results" / "COMPATIBILITY.md").read_text().splitlines(), "the failing cell's log"
    assert "restored the publication of" in "".join(second.stdout)
    assert "new failure: tf-4.50/qwen2-tiny" in "".join(second.summaries)
    annotation = "::error title=New failure since the last published run::tf-4.50/qwen2-tiny"
    assert any(line.startswith(annotation) for line in "".join(second.stdout).splitlines()), second.stdout

    # Then tf-4.40 crashes too, with --fail-on-regression: the step fails after publishing,
    # and the summary and the publication still happen.
    crash_cell(artifacts.store, "tf-4.40", "qwen2-tiny")
    third, _ = merge(3, "true")
    outcomes = dict(third.outcomes)
    assert outcomes["Merge the shards, bisect, search the release line and publish results/"] == "failure"
    assert outcomes["Job summary, and an annotation for each cell that newly fails"] == "success"
    assert outcomes["Commit the publication to the pages branch"] == outcomes["Push the pages branch"] == "success"
    assert "new failure: tf-4.40/qwen2-tiny" in "".join(third.summaries)
    history = pages("show", "gh-pages:history.jsonl").splitlines()
    assert len(history) == 3
    assert len(pages("log", "--format=%H", "gh-pages").split()) == 3
    assert len(pages("log", "--format=%H", "main").split()) == 1
