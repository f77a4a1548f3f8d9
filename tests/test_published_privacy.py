"""Published files name no machine: no absolute local path, hostname, kernel string or user
name in anything under results/ (matrix.json, COMPATIBILITY.md, index.html, history.jsonl,
bisect/*.json, the badge, pins), while the cell files keep the raw facts the diagnosis reads.

Two reports are published from generated run folders whose cells carry what real cells
carry (tracebacks through the checkout's probes/, an env's site-packages, the HF modules
folder, the standard library; log tails and reasons naming temporary and home folders; the
hostname and kernel string of two machines), the default config's envs and models with the
committed bisect report (which names this machine's folders), and a team config in a folder
of its own that names a machine label.
"""

from __future__ import annotations

import getpass
import json
import platform
import re
import socket
import tempfile
from pathlib import Path

import pytest

from matrix.__main__ import main
from matrix.config import ConfigError, load, parse
from matrix.envs.plan import ENV_FACTS_FILE, PLAN_FILE
from matrix.results.collect import BISECT_PREFIX
from probes.public import bare_platform, host_alias, publication
from probes.record import write_json_atomic
from tests.helpers import ROOT, make_cell

THIS = {
    "hostname": socket.gethostname(),
    "platform": platform.platform(),
    "machine": platform.machine(),
    "cpu_count": 2,
    "memory_gb": 7.8,
    "python": "3.11.7",
}
OTHER = {
    "hostname": "gpu-07.lab.internal",
    "platform": "Linux-6.8.0-1017-azure-x86_64-with-glibc2.39",
    "machine": "x86_64",
    "cpu_count": 16,
    "memory_gb": 125.7,
    "python": "3.11.9",
}
HOME = str(Path.home())
HF_MODULES = f"{HOME}/.cache/huggingface/modules/transformers_modules/chatglm-legacy-b06b5aca0ca0"
BISECT_ENV = f"{ROOT}/.cache/bisect/tf-4.42.0/lib/python3.11/site-packages"
# A path below one of these, at the start of a name, is a local absolute path.
LOCAL_ROOT = re.compile(r"(?<![\w.~/-])/(?:home|root|Users|tmp|var|private|srv|mnt|work|scratch)(?=/|\b)")


def traceback(*frames: str) -> str:
    lines = ["Traceback (most recent call last):"]
    for path in frames:
        lines += [f'  File "{path}", line 12, in run', "    self.step()"]
    message = "AttributeError: 'ChatGLMModel' object has no attribute '_extract_past_from_model_output'"
    return "\n".join([*lines, message])


def forbidden() -> list[str]:
    """The exact strings of this machine (and the other one) that must not be published."""
    user = getpass.getuser()
    return [
        str(ROOT),
        HOME + "/",
        tempfile.gettempdir() + "/",
        f"/{user}/",
        f"-of-{user}",
        platform.platform(),
        OTHER["platform"],
        OTHER["hostname"],
        "gpu-07",
        *([platform.release()] if len(platform.release()) >= 8 else []),
    ]


def leaks(results: Path, extra: tuple[str, ...] = (), allowed: tuple[str, ...] = ()) -> list[str]:
    """Every published file's local roots, forbidden strings and hostnames, as 'file: what'
    (but for what the config chose to publish: `allowed`)."""
    found = []
    hostnames = {socket.gethostname(), platform.node(), OTHER["hostname"]}
    files = [p for p in sorted(results.rglob("*")) if p.is_file() and "runs" not in p.relative_to(results).parts]
    assert {"matrix.json", "COMPATIBILITY.md", "index.html", "history.jsonl", "badge.svg"} <= {p.name for p in files}
    for path in files:
        text = path.read_text(encoding="utf-8")
        where = path.relative_to(results)
        found += [f"{where}: {hit}" for hit in LOCAL_ROOT.findall(text)]
        found += [f"{where}: {item}" for item in [*forbidden(), *extra] if item in text and item not in allowed]
        for name in hostnames:
            if re.search(rf"(?<![A-Za-z0-9-]){re.escape(name)}(?![A-Za-z0-9-])", text):
                found.append(f"{where}: hostname {name}")
    return found


def env_folder(run: Path, env: str, transformers: str, machine: dict, settings: dict, models: list[str]) -> None:
    packages = {"transformers": transformers, "torch": "2.13.0+cpu"}
    write_json_atomic(
        run / env / ENV_FACTS_FILE,
        {"name": env, "status": "built", "machine": machine, "packages": packages, "python": f"{ROOT}/.nox/x/bin/py"},
    )
    specs = [{"model": model, "variant": "", "task": "causal-lm"} for model in models]
    write_json_atomic(run / env / PLAN_FILE, {"env": env, "settings": settings, "models": models, "cells": specs})


def failing_cell(env: str, model: str, machine: dict, frames: list[str], log_tail: str):
    error = {
        "type": "AttributeError",
        "message": "'ChatGLMModel' object has no attribute '_extract_past_from_model_output'",
        "traceback": traceback(*frames),
    }
    return make_cell(
        env, model, "fail", phase="generate", error=error, machine=machine, reason=f"generate failed; see {frames[-1]}",
        facts={"log_tail": log_tail}, log=f"{env}/{model}.log", versions={"transformers": "4.49.0"},
    )  # fmt: skip


def passing_cell(env: str, model: str, machine: dict):
    return make_cell(env, model, "pass", machine=machine, metrics={"generate_median_s": 0.02}, log=f"{env}/{model}.log")


def publish(run: Path, results: Path) -> None:
    assert main(["report", str(run), "--results", str(results)]) == 0


def test_the_default_configs_report_names_no_machine(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(ROOT)  # the default config's folder, where a user runs it
    results = tmp_path / "results"
    run = results / "runs" / "20261202T100000Z-priv"
    models = ["codebert-tiny", "qwen2-tiny", "chatglm-legacy", "minilm"]
    pytest_tmp = f"{tempfile.gettempdir()}/pytest-of-{getpass.getuser()}/pytest-3/test_x0/cache/x.py"
    log_tail = f"from {HF_MODULES}/modeling_chatglm.py:88\n{pytest_tmp}:3: UserWarning\n/usr/lib/python3.11/x.py"
    for env, release, machine in (("tf-4.40", "4.40.2", THIS), ("tf-4.50", "4.50.3", OTHER), ("latest", "5.2.0", THIS)):
        env_folder(run, env, release, machine, {}, models)
        for model in models:
            if model == "chatglm-legacy" and env != "tf-4.40":
                frames = [f"{ROOT}/probes/cell.py", f"{BISECT_ENV}/transformers/generation/utils.py"]
                failing_cell(env, model, machine, [*frames, f"{HF_MODULES}/modeling_chatglm.py"], log_tail).write(run)
            else:
                passing_cell(env, model, machine).write(run)
            (run / env / f"{model}.log").write_text(f"log of {model} in {ROOT}/.nox/probe/lib\n")
    bisect = json.loads((ROOT / "results" / "bisect" / "chatglm-legacy.json").read_text(encoding="utf-8"))
    bisect["run"] = run.name
    write_json_atomic(run / f"{BISECT_PREFIX}chatglm-legacy.json", bisect)
    publish(run, results)
    capsys.readouterr()
    assert leaks(results) == []
    # What the rules made of them: paths that mean the same on any machine, two machines told apart.
    data = json.loads((results / "matrix.json").read_text(encoding="utf-8"))
    glm = next(cell for cell in data["cells"] if cell["model"] == "chatglm-legacy" and cell["env"] == "latest")
    assert glm["reason"] == "generate failed; see transformers_modules/chatglm-legacy-b06b5aca0ca0/modeling_chatglm.py"
    assert glm["machine"]["hostname"] == host_alias(socket.gethostname())
    assert glm["machine"]["platform"] == bare_platform(platform.platform())
    labels = sorted(machine["label"] for machine in data["meta"]["machines"])
    assert labels == sorted([host_alias(socket.gethostname()), host_alias(OTHER["hostname"])])
    assert (results / "bisect" / "chatglm-legacy.json").is_file()
    assert "site-packages/transformers/generation/utils.py" in (results / "bisect" / "chatglm-legacy.json").read_text()
    # The cell files keep the raw facts (the diagnosis reads the traceback's paths).
    raw = json.loads((run / "latest" / "chatglm-legacy.json").read_text(encoding="utf-8"))
    assert f"{BISECT_ENV}/transformers/generation/utils.py" in raw["error"]["traceback"]
    assert raw["machine"]["hostname"] == socket.gethostname()
    # A second publication of the same run (the history rewritten) leaks nothing either.
    publish(run, results)
    capsys.readouterr()
    assert leaks(results) == []


TEAM_CONFIG = """
[settings]
machine_label = "gpu-runner"

[envs."tf-4.50"]
transformers = "==4.50.3"

[models.ranker]
path = "models/ranker"
task = "causal-lm"
"""


def test_a_team_config_with_a_machine_label_names_the_label(tmp_path, capsys):
    team = tmp_path / "team-repo"
    (team / "models" / "ranker").mkdir(parents=True)
    (team / "matrix.toml").write_text(TEAM_CONFIG, encoding="utf-8")
    results = team / "results"
    run = results / "runs" / "20261202T110000Z-team"
    settings = load(team / "matrix.toml").settings.to_dict()  # what the plan carries
    assert settings["machine_label"] == "gpu-runner"
    env_folder(run, "tf-4.50", "4.50.3", OTHER, settings, ["ranker"])
    frames = [f"{team}/models/ranker/modeling_ranker.py", f"{team}/.nox/probe-tf-4-50/bin/helper.py"]
    failing_cell("tf-4.50", "ranker", OTHER, frames, f"{team}/results/runs/x.log\n").write(run)
    publish(run, results)
    capsys.readouterr()
    # The label is the machine's name; the team asked for its platform to be published.
    assert leaks(results, extra=(str(team), str(tmp_path)), allowed=(OTHER["platform"],)) == []
    data = json.loads((results / "matrix.json").read_text(encoding="utf-8"))
    (cell,) = data["cells"]
    assert cell["machine"]["hostname"] == "gpu-runner" and cell["machine"]["platform"] == OTHER["platform"]
    assert cell["reason"] == "generate failed; see .nox/probe-tf-4-50/bin/helper.py"
    assert "models/ranker/modeling_ranker.py" in (results / "index.html").read_text(encoding="utf-8")


def test_the_committed_results_name_no_machine():
    """What this repository publishes (results/, re-rendered by `nox -s matrix` on some
    machine): checked here against this machine's names and folders."""
    assert leaks(ROOT / "results") == []


def test_a_machine_label_is_a_safe_name(tmp_path):
    with pytest.raises(ConfigError) as raised:
        parse({"settings": {"machine_label": "lab/box 7"}}, tmp_path / "matrix.toml")
    assert str(raised.value) == (
        "matrix.toml: [settings] machine_label: 'lab/box 7' is not a safe name (letters, digits, '.', '_', '-')"
    )


def test_the_rules_one_path_at_a_time():
    public = publication(folders=["/srv/team"], cache="/srv/team/.cache", machines=[OTHER])
    cases = {
        "/srv/team/.nox/probe/lib/python3.11/site-packages/transformers/x.py": "site-packages/transformers/x.py",
        "/opt/runner/_work/repo/repo/probes/cell.py": "probes/cell.py",
        "/home/alice/.cache/huggingface/modules/transformers_modules/m/a.py": "transformers_modules/m/a.py",
        "/srv/team/models/m/config.json": "models/m/config.json",
        "/srv/team": ".",
        "/srv/team/.cache/fixtures/qwen2-tiny": "$MATRIX_CACHE/fixtures/qwen2-tiny",
        "/home/alice/.local/share/uv/python/cpython-3.11/lib/python3.11/subprocess.py": "python3.11/subprocess.py",
        "/Users/bob/notes.txt": "~/notes.txt",
        "/tmp/pytest-of-bob/pytest-1/t0/f.py": "$TMPDIR/f.py",
        "/usr/bin/gcc": "/usr/bin/gcc",
        "/mnt/nfs/bob/weights.bin": "…/weights.bin",
    }
    assert {path: public.path(path) for path in cases} == cases
    text = 'see https://huggingface.co/x/y; File "/srv/team/a.py", line 3 on gpu-07.lab.internal '
    text += "(Linux-6.8.0-1017-azure-x86_64-with-glibc2.39)\n\\n/root/x.py 4/4 </td>"
    published = public.text(text)
    assert published == (
        f'see https://huggingface.co/x/y; File "a.py", line 3 on {host_alias(OTHER["hostname"])} (Linux-x86_64)\n'
        "\\n~/x.py 4/4 </td>"
    )
    assert public.text(published) == published, "publishing twice changes nothing"
    code = "a { color: red } /* one */ x = 4 / 2; y = z/2; // two </td> <br/>"
    assert public.text(code) == code, "CSS and script are no paths"
    assert public.text(r"in /home/al\_b/x\_y.py") == r"in ~/x\_y.py", "a Markdown-escaped path"
    at_home = publication(folders=["/home/alice"])  # a report run from the home folder
    uv_python = "/home/alice/.local/share/uv/python/cpython-3.11/lib/python3.11/subprocess.py"
    assert at_home.path(uv_python) == "python3.11/subprocess.py", "the same frame reads the same on any machine"
    assert public.data({"machine": {"hostname": "unseen", "platform": "Linux-5.15.0-x86_64"}}) == {
        "machine": {"hostname": host_alias("unseen"), "platform": "Linux-x86_64"}
    }
    wheel = {"wheel": {"platform": "manylinux_2_17_x86_64"}}
    assert public.data(wheel) == wheel, "only a machine fingerprint's platform is cut"
