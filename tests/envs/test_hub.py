"""Hub preflight, hub errors in real cells, and the HF cache path, against a fake hub on 127.0.0.1.

The real hub is never reached: `tests/hub_server.py` answers the hub's API the way
huggingface.co does (error codes and headers included) and serves a generated tiny Qwen2
model as `Qwen/Qwen2-7B`. Cells run in two real envs, one per generation of the hub client:
transformers 4.40.2 (huggingface_hub 0.x) and the newest transformers (huggingface_hub 1.x+).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from matrix.config import ModelSpec, load
from matrix.envs import hub
from matrix.envs.plan import runner_plan
from matrix.envs.run import HUB_FILE, probe_env, probe_env_vars
from matrix.results.collect import collect
from probes.record import CellResult, write_json_atomic
from probes.status import Status
from tests.helpers import ROOT, make_cell
from tests.hub_server import FakeHub, FakeRepo, git_blob_id, running

# The tests that build real envs (hub 0.x and 1.x+) are marked e2e by conftest's hook.

QWEN = "Qwen/Qwen2-7B"
GATED = "Org/gated-7b"
GRANTED_TOKEN = "hf_granted_" + "x" * 24
SEARCH_ONLY = ("Qwen/Qwen2-7B-Instruct", "Qwen/Qwen2-7B-Chat", "Qwen/Qwen2-7B-Instruct-AWQ", "Qwen/Qwen2-1.5B")
RUNNER_TIMEOUT_S = 300


@pytest.fixture(autouse=True)
def no_hub_settings_from_outside(monkeypatch):
    """The tests decide endpoint, token, offline mode and cache themselves."""
    for name in ("HF_ENDPOINT", "HF_TOKEN", "HF_HUB_OFFLINE", "HF_HUB_CACHE", "HF_HOME"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(scope="module")
def qwen_folder(tf440_python, fixture_cache) -> Path:
    """The generated tiny Qwen2 model (numpy+safetensors come from the env)."""
    done = subprocess.run(
        [tf440_python, "-m", "probes.fixtures", fixture_cache / "fixtures", "qwen2-tiny"],
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    return Path(done.stdout.strip().split("\t")[1])


@pytest.fixture(scope="module")
def fake_hub(qwen_folder):
    served = FakeHub(
        [
            FakeRepo.from_folder(QWEN, qwen_folder, refs=("main", "v1.0")),
            FakeRepo.from_folder(GATED, qwen_folder, gated=True),
        ],
        search_index=SEARCH_ONLY,
        tokens_with_access=frozenset({GRANTED_TOKEN}),
    )
    with running(served):
        yield served


@pytest.fixture(scope="module", params=["tf440_python", "latest_python"])
def env_python(request) -> Path:
    """Each hub client generation: huggingface_hub 0.x (4.40.2) and 1.x+ (the newest 5.x),
    envs of conftest's factory (built once per session, shared with the other files)."""
    return request.getfixturevalue(request.param)


def closed_port_url() -> str:
    """An endpoint nothing listens on: connections are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def hub_model(name: str, repo: str, revision: str | None = None) -> ModelSpec:
    return ModelSpec(name=name, source_kind="hub", source=repo, task="causal-lm", revision=revision)


def fill_hf_cache(cache_dir: Path, repo: str, folder: Path, refs: tuple[str, ...] = ("main",)) -> str:
    """Put a model folder into an HF cache the way the hub client leaves it: blobs by id,
    snapshot files as relative symlinks to them, refs naming the commit. Returns the commit."""
    commit = FakeRepo.from_folder(repo, folder).sha
    root = cache_dir / f"models--{repo.replace('/', '--')}"
    for file in sorted(folder.iterdir()):
        blob = root / "blobs" / git_blob_id(file.read_bytes())
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(file.read_bytes())
        link = root / "snapshots" / commit / file.name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(os.path.relpath(blob, link.parent))
    for ref in refs:
        (root / "refs").mkdir(parents=True, exist_ok=True)
        (root / "refs" / ref).write_text(commit, encoding="utf-8")
    return commit


# -- the preflight, against the fake hub ------------------------------------------------------


def test_preflight_verdicts_online(fake_hub, env_python):
    models = [
        hub_model("good", QWEN),
        hub_model("tagged", QWEN, "v1.0"),
        hub_model("missing", "Qwen/Qwen2-7B-Base"),
        hub_model("gated", GATED),
        hub_model("bad-revision", QWEN, "nope"),
        ModelSpec(name="local", source_kind="fixture", source="qwen2-tiny", task="causal-lm"),
    ]
    found = hub.preflight(models, env_python, endpoint=fake_hub.url)
    assert found.reachable and not found.token_given
    verdicts = {v.model: v for v in found.verdicts}
    assert set(verdicts) == {"good", "tagged", "missing", "gated", "bad-revision"}  # hub models only
    assert verdicts["good"].kind == verdicts["tagged"].kind == hub.OK
    missing = verdicts["missing"]
    assert (missing.kind, missing.status) == (hub.INVALID, Status.INVALID_MODEL)
    assert missing.suggestions[0] == QWEN and len(missing.suggestions) == 3
    assert all("Qwen2-7B" in s for s in missing.suggestions) and "Qwen/Qwen2-1.5B" not in missing.suggestions
    assert missing.reason.startswith("no such model id (Qwen/Qwen2-7B-Base; private repos need HF_TOKEN)")
    assert f"similar ids: {QWEN}, " in missing.reason
    gated = verdicts["gated"]
    assert (gated.kind, gated.status) == (hub.GATED, Status.UNAVAILABLE)
    assert gated.reason.startswith("gated: set HF_TOKEN")
    bad = verdicts["bad-revision"]
    assert (bad.kind, bad.status) == (hub.NO_REVISION, Status.INVALID_MODEL)
    assert bad.reason == f"no such revision ('nope' does not exist in {QWEN})"
    assert set(found.blocked()) == {"missing", "gated", "bad-revision"}


def test_gated_depends_on_the_token_and_the_token_is_never_kept(fake_hub, env_python, caplog):
    models = [hub_model("gated", GATED), hub_model("missing", "Qwen/Qwen2-7B-Base")]
    start = len(fake_hub.requests)
    caplog.set_level("INFO", logger="matrix")
    granted = hub.preflight(models, env_python, endpoint=fake_hub.url, token=GRANTED_TOKEN)
    wrong = hub.preflight(models, env_python, endpoint=fake_hub.url, token="hf_no_access_" + "y" * 20)
    assert granted.verdicts[0].kind == hub.OK and granted.verdicts[0].reason == "gated, and HF_TOKEN has access"
    assert wrong.verdicts[0].kind == hub.GATED and "HF_TOKEN has no access to Org/gated-7b" in wrong.verdicts[0].reason
    # With a token, the hub says 404 for a missing repo; no hint about private repos then.
    assert wrong.verdicts[1].reason.startswith("no such model id (Qwen/Qwen2-7B-Base);")
    assert ("HEAD", f"/{GATED}/resolve/{fake_hub.repos[GATED].sha}/config.json") in fake_hub.requests[start:]
    for found in (granted, wrong):
        kept = json.dumps(found.to_dict()) + "\n".join(found.lines())
        assert GRANTED_TOKEN not in kept and "hf_no_access_" not in kept
        assert found.token_given
        assert hub.Preflight.from_dict(json.loads(json.dumps(found.to_dict()))) == found
    # The client gets the token in its environment: the command line, which is logged, lacks it.
    assert "probes.hub_client" in caplog.text
    assert GRANTED_TOKEN not in caplog.text and "hf_no_access_" not in caplog.text


def test_unreachable_hub_means_offline_at_once_with_the_cache_deciding(tmp_path, monkeypatch, qwen_folder, env_python):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    commit = fill_hf_cache(tmp_path / "hf" / "hub", QWEN, qwen_folder, refs=("main", "v1.0"))
    models = [
        hub_model("cached", QWEN),
        hub_model("cached-tag", QWEN, "v1.0"),
        hub_model("cached-commit", QWEN, commit),
        hub_model("other-commit", QWEN, "0" * 40),
        hub_model("other-tag", QWEN, "v2.0"),
        hub_model("not-cached", "Qwen/Qwen2-0.5B"),
    ]
    start = time.perf_counter()
    found = hub.preflight(models, env_python, endpoint=closed_port_url())
    print(f"an unreachable hub noticed in {time.perf_counter() - start:.2f} s")  # a figure, not a timed assert
    assert not found.reachable and "ConnectionRefusedError" in found.why_offline
    kinds = {v.model: v.kind for v in found.verdicts}
    assert kinds == {
        "cached": hub.OFFLINE_CACHED,
        "cached-tag": hub.OFFLINE_CACHED,
        "cached-commit": hub.OFFLINE_CACHED,
        "other-commit": hub.OFFLINE_NOT_CACHED,
        "other-tag": hub.OFFLINE_NOT_CACHED,
        "not-cached": hub.OFFLINE_NOT_CACHED,
    }
    not_cached = found.verdicts[-1]
    assert not_cached.status is Status.UNAVAILABLE and not_cached.reason.startswith("offline, not cached (")
    assert "HF_HUB_OFFLINE=1" in found.lines()[0]


def test_hf_hub_offline_set_by_the_user_asks_nothing(fake_hub, monkeypatch, tmp_path, env_python):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    start = len(fake_hub.requests)
    found = hub.preflight([hub_model("good", QWEN)], env_python, endpoint=fake_hub.url)
    assert fake_hub.requests[start:] == []
    assert (found.reachable, found.why_offline) == (False, "HF_HUB_OFFLINE is set")
    assert found.verdicts[0].kind == hub.OFFLINE_NOT_CACHED


def test_offline_verdicts_look_in_the_hub_clients_cache(monkeypatch, tmp_path, qwen_folder, env_python):
    """The cache folder is the client's own: HF_HUB_CACHE, else HF_HOME/hub, else
    $XDG_CACHE_HOME/huggingface/hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    models = [hub_model("cached", QWEN)]
    for where in ("xdg/huggingface/hub", "home/hub", "cache"):
        commit = fill_hf_cache(tmp_path / where, QWEN, qwen_folder)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    expected = [tmp_path / "xdg" / "huggingface" / "hub", tmp_path / "home" / "hub", tmp_path / "cache"]
    found = [hub.preflight(models, env_python).verdicts[0].reason]
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    found.append(hub.preflight(models, env_python).verdicts[0].reason)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "cache"))
    found.append(hub.preflight(models, env_python).verdicts[0].reason)
    snapshots = [folder / "models--Qwen--Qwen2-7B" / "snapshots" / commit for folder in expected]
    assert found == [f"offline; cached in {snapshot}" for snapshot in snapshots]


def test_endpoint_that_is_not_a_url_is_a_clear_error():
    with pytest.raises(ValueError, match=r"HF_ENDPOINT: 'huggingface\.co' is not an http\(s\) URL"):
        hub.preflight([hub_model("good", QWEN)], sys.executable, endpoint="huggingface.co")


def test_the_clients_own_settings_decide(fake_hub, monkeypatch, env_python):
    """What only the hub client knows: TRANSFORMERS_OFFLINE puts it offline too, and an id it
    refuses (`--` in a name) is invalid without a request."""
    start = len(fake_hub.requests)
    found = hub.preflight(
        [hub_model("odd", "Qwen/Qwen2--7B"), hub_model("good", QWEN)], env_python, endpoint=fake_hub.url
    )
    odd, good = found.verdicts
    assert found.reachable and (odd.kind, odd.status, good.kind) == (hub.INVALID, Status.INVALID_MODEL, hub.OK)
    assert odd.reason.startswith("not a valid hub id (") and "Qwen/Qwen2--7B" in odd.reason
    assert [r for r in fake_hub.requests[start:] if r[1].startswith("/api/models")] == [("GET", f"/api/models/{QWEN}")]
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    offline = hub.preflight([hub_model("good", QWEN)], env_python, endpoint=fake_hub.url)
    assert (offline.reachable, offline.why_offline) == (False, "TRANSFORMERS_OFFLINE is set")
    assert fake_hub.requests[start + 1 :] == []


def test_an_interpreter_without_the_hub_client_leaves_it_to_the_probes(fake_hub, tmp_path):
    bare = tmp_path / "bare"
    assert subprocess.run(["uv", "venv", "--quiet", "--python", sys.executable, bare]).returncode == 0
    found = hub.preflight([hub_model("good", QWEN)], bare / "bin" / "python", endpoint=fake_hub.url)
    assert found.reachable and found.verdicts[0].kind == hub.UNCHECKED and found.verdicts[0].status is None
    assert found.verdicts[0].reason.startswith("no answer from the hub client (ModuleNotFoundError: ")
    assert found.lines()[0].startswith(f"[hub] {fake_hub.url} not asked (ModuleNotFoundError: ")


class HangingSearchHub(FakeHub):
    """A hub whose search never answers (until released): the client's list_models has no timeout."""

    release = threading.Event()
    answered = threading.Event()

    def search(self, query: str, limit: int) -> list[dict[str, object]]:
        self.release.wait(60)
        self.answered.set()
        return []


def test_a_client_that_hangs_is_cut_off_and_what_it_said_is_kept(tf440_python, qwen_folder, monkeypatch):
    monkeypatch.setattr(hub, "CLIENT_START_S", 3.0)
    monkeypatch.setattr(hub, "SEARCH_ALLOWANCE_S", 0.0)
    served = HangingSearchHub([FakeRepo.from_folder(QWEN, qwen_folder)])
    with running(served):
        try:
            found = hub.preflight(
                [hub_model("good", QWEN), hub_model("missing", "Qwen/Absent")],
                tf440_python,
                endpoint=served.url,
                timeout=0.5,
            )
            hung = not served.answered.is_set()
        finally:
            served.release.set()
    good, missing = found.verdicts
    assert found.reachable and good.kind == hub.OK
    assert missing.kind == hub.UNCHECKED and missing.status is None
    assert missing.reason == "no answer from the hub client (no answer within 5 s); the probe will try"
    assert hung, "the preflight returned while the hub's search still hung (no wall-clock bound needed)"
    print(f"a hanging client cut off after {found.seconds:.1f} s")


# -- real cells in both client generations ----------------------------------------------------

ONLINE_MODELS = {
    "good": (QWEN, None),
    "missing": ("Qwen/Qwen2-7B-Base", None),
    "gated": (GATED, None),
    "bad-revision": (QWEN, "nope"),
}
OFFLINE_MODELS = {"cached": ("Acme/tiny-qwen", None), "not-cached": ("Acme/absent", None)}
# Run in the online runner's interpreter after its cells (torch and transformers are imported
# by then, which saves a start per env): load each hub id through transformers, which wraps
# the hub's error in its own OSError, and classify that.
RUNNER_THEN_TRANSFORMERS = """
import json, sys
from probes import runner
cases, plan = json.loads(sys.argv[1]), sys.argv[2]
code = runner.main([plan])
import transformers
from probes.cell import classify

found = {}
for repo, revision in cases:
    try:
        transformers.AutoConfig.from_pretrained(repo, revision=revision)
        found[f"{repo}@{revision}"] = ["loaded"]
    except Exception as exc:
        status, reason = classify(exc, "config")
        found[f"{repo}@{revision}"] = [status.value, type(exc).__name__, reason]
print("classified: " + json.dumps(found))
sys.exit(code)
"""
TRANSFORMERS_CASES = [["Qwen/Qwen2-7B-Base", None], [GATED, None], [QWEN, "nope"]]


def hub_config(tmp_path: Path, models: dict[str, tuple[str, str | None]], envs: tuple[str, ...] = ("e",)) -> Path:
    """A config with hub models {name: (repo, revision)}; the envs are those of the tf440 fixture env."""
    text = "".join(f'[envs.{e}]\ntransformers = "==4.40.2"\ntorch = "==2.13.0"\n\n' for e in envs)
    for name, (repo, revision) in models.items():
        text += f'[models.{name}]\nhub = "{repo}"\ntask = "causal-lm"\n'
        text += f'revision = "{revision}"\n\n' if revision else "\n"
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "matrix.toml"
    path.write_text(text, encoding="utf-8")
    return path


def start_runner(python: Path, folder: Path, models: dict, args: tuple[str, ...], **env: str) -> subprocess.Popen:
    """Start the env's interpreter on a runner plan for `models` in `folder` (args: how to run it)."""
    config = load(hub_config(folder, models))
    plan = folder / "plan.json"
    locations = {m.name: m.source for m in config.models}
    plan.write_text(json.dumps(runner_plan(config, "e", folder / "run", locations)), encoding="utf-8")
    return subprocess.Popen(
        [python, *args, plan],
        env={**os.environ, "PYTHONPATH": str(ROOT), "TOKENIZERS_PARALLELISM": "false", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def finished_cells(started: subprocess.Popen, folder: Path, models: dict) -> tuple[dict[str, CellResult], str]:
    output, _ = started.communicate(timeout=RUNNER_TIMEOUT_S)
    assert started.returncode == 0, output[-3000:]
    cells = {
        name: CellResult.from_dict(json.loads((folder / "run" / "e" / f"{name}.json").read_text(encoding="utf-8")))
        for name in models
    }
    return cells, output


@pytest.fixture(scope="module")
def env_cells(env_python, fake_hub, qwen_folder, tmp_path_factory) -> dict:
    """Both runs of one env, side by side: online against the fake hub (fresh HF cache), then
    transformers' own errors in that interpreter; and offline (HF_HUB_OFFLINE=1, the hub never asked)
    with an HF cache that holds one of the two ids."""
    online, offline = tmp_path_factory.mktemp("online"), tmp_path_factory.mktemp("offline")
    fill_hf_cache(offline / "hf" / "hub", "Acme/tiny-qwen", qwen_folder)
    started = [
        start_runner(
            env_python,
            online,
            ONLINE_MODELS,
            ("-c", RUNNER_THEN_TRANSFORMERS, json.dumps(TRANSFORMERS_CASES)),
            HF_ENDPOINT=fake_hub.url,
            HF_HOME=str(online / "hf"),
        ),
        start_runner(
            env_python,
            offline,
            OFFLINE_MODELS,
            ("-m", "probes.runner"),
            HF_HUB_OFFLINE="1",
            HF_HOME=str(offline / "hf"),
            HF_ENDPOINT=fake_hub.url,  # it answers, so a request would show in fake_hub.requests
        ),
    ]
    online_cells, online_output = finished_cells(started[0], online, ONLINE_MODELS)
    offline_cells, _ = finished_cells(started[1], offline, OFFLINE_MODELS)
    classified = json.loads(online_output.split("classified: ", 1)[1].splitlines()[0])
    versions = online_cells["good"].versions
    return {"online": online_cells, "offline": offline_cells, "transformers": classified, "versions": versions}


def test_cells_cover_both_hub_client_generations(env_cells, request):
    major = int(env_cells["versions"]["huggingface-hub"].split(".")[0])
    expected_new = request.node.callspec.params["env_python"] == "latest_python"
    assert major >= 1 if expected_new else major == 0, env_cells["versions"]
    assert env_cells["versions"]["transformers"].startswith("5." if expected_new else "4.40.")


def test_hub_cells_online(env_cells):
    """Download and load from the fake hub; missing, gated and bad revision say so."""
    cells = env_cells["online"]
    assert cells["good"].status is Status.PASS, cells["good"].reason
    assert cells["good"].facts["model_type"] == "qwen2"
    assert [(c.status, c.phase, c.reason) for c in (cells["missing"], cells["gated"], cells["bad-revision"])] == [
        (Status.INVALID_MODEL, "resolve", "no such model id (Qwen/Qwen2-7B-Base; private repos need HF_TOKEN)"),
        (Status.UNAVAILABLE, "resolve", f"gated: set HF_TOKEN ({GATED} needs a token with access)"),
        (Status.INVALID_MODEL, "resolve", f"no such revision ('nope' does not exist in {QWEN})"),
    ]
    # The hub's own error is kept as the cause, for the failure entry.
    assert "RevisionNotFoundError" in cells["bad-revision"].error["traceback"]


def test_transformers_oserror_maps_like_the_hub_error(env_cells):
    """Loading a hub id through transformers raises its own OSError; its cause decides the status."""
    assert env_cells["transformers"] == {
        "Qwen/Qwen2-7B-Base@None": ["invalid-model", "OSError", "no such model id"],
        f"{GATED}@None": ["unavailable", "OSError", "gated: set HF_TOKEN"],
        f"{QWEN}@nope": ["invalid-model", "OSError", "no such revision"],
    }


def test_hf_cache_loads_offline(env_cells, fake_hub):
    """A hub id already in the local HF cache loads with HF_HUB_OFFLINE=1 without asking the hub;
    one not in it is `unavailable` at once."""
    cells = env_cells["offline"]
    assert cells["cached"].status is Status.PASS, cells["cached"].reason
    assert cells["cached"].facts["model_type"] == "qwen2"
    absent = cells["not-cached"]
    assert (absent.status, absent.phase) == (Status.UNAVAILABLE, "resolve")
    assert absent.reason == "offline, not cached (Acme/absent is not in the local HF cache)"
    asked = [request for request in fake_hub.requests if "/Acme/" in request[1]]
    assert asked == [], "offline: the hub is never asked (a request would retry for about 23 s a file)"
    print(f"offline, not cached: unavailable after {absent.duration_s:.2f} s")


# -- probe_env: once per run ------------------------------------------------------------------


def test_probe_env_asks_the_hub_once_per_run(fake_hub, tf440_python, tmp_path, monkeypatch, capsys):
    """Three env sessions of one run: one preflight; the decided cells are written for every
    variant of every env, left out of the runner plans, and collected."""
    monkeypatch.setenv("HF_ENDPOINT", fake_hub.url)
    path = hub_config(tmp_path, {"missing": ("Qwen/Qwen2-7B-Base", None), "gated": (GATED, None)}, ("a", "b", "c"))
    path.write_text(path.read_text().replace('hub = "Org/gated-7b"', 'hub = "Org/gated-7b"\nshims = ["extract-past"]'))
    config = load(path)
    run_dir = tmp_path / "runs" / "r1"
    start = len(fake_hub.requests)
    for env in ("a", "b", "c"):
        assert probe_env(config, env, tf440_python, run_dir, tmp_path / "cache") is None
    asked = [r for r in fake_hub.requests[start:] if r == ("GET", f"/api/models/{GATED}")]
    assert len(asked) == 1, fake_hub.requests[start:]
    out = capsys.readouterr().out
    assert out.count(f"[hub] {fake_hub.url} reachable") == 3 and out.count("this run's preflight, from") == 2
    assert "[hub] missing (Qwen/Qwen2-7B-Base): invalid-model: no such model id" in out
    stored = json.loads((run_dir / HUB_FILE).read_text())
    assert stored["endpoint"] == fake_hub.url and {v["model"] for v in stored["verdicts"]} == {"missing", "gated"}
    for env in ("a", "b", "c"):
        plan = json.loads((run_dir / env / "_plan.json").read_text())
        assert plan["cells"] == [] and [s["model"] for s in plan["left_out"]] == ["missing", "gated", "gated"]
    run = collect(run_dir)
    got = sorted((c.env, c.stem, c.status.value, c.phase) for c in run.cells)
    assert got == sorted(
        (env, stem, status, "preflight")
        for env in ("a", "b", "c")
        for stem, status in (
            ("missing", "invalid-model"),
            ("gated", "unavailable"),
            ("gated+extract-past", "unavailable"),
        )
    )
    assert all(c.machine.get("hostname") for c in run.cells)
    assert run.cells[0].facts["hub"]["endpoint"] == fake_hub.url
    assert set(run.model_specs) == {"missing", "gated"}


def test_probe_env_with_the_hub_unreachable(tf440_python, tmp_path, monkeypatch):
    """Unreachable: a hub model not in the cache is `unavailable (offline, not cached)` without a probe,
    and the runner of the other models gets HF_HUB_OFFLINE=1."""
    monkeypatch.setenv("HF_ENDPOINT", closed_port_url())
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    config = load(hub_config(tmp_path, {"absent": ("Acme/absent", None)}))
    run_dir = tmp_path / "runs" / "r2"
    assert probe_env(config, "e", tf440_python, run_dir, tmp_path / "cache") is None
    cell = CellResult.from_dict(json.loads((run_dir / "e" / "absent.json").read_text()))
    assert (cell.status, cell.phase) == (Status.UNAVAILABLE, "preflight")
    assert cell.reason.startswith("offline, not cached (Acme/absent is not in the HF cache ")
    assert probe_env_vars(config, hub_offline=True)["HF_HUB_OFFLINE"] == "1"
    assert "HF_HUB_OFFLINE" not in probe_env_vars(config, hub_offline=False)


def test_rows_keep_the_config_order_when_the_preflight_decides_a_model(tmp_path):
    config = load(hub_config(tmp_path, {"first": ("Acme/absent", None), "second": ("Qwen/Qwen2-7B", None)}))
    run_dir = tmp_path / "runs" / "r3"
    locations = {m.name: m.source for m in config.models}
    plan = runner_plan(config, "e", run_dir, locations, leave_out=frozenset({"first"}))
    write_json_atomic(run_dir / "e" / "_plan.json", plan)
    make_cell("e", "second", "pass").write(run_dir)
    make_cell("e", "first", "invalid-model", phase="preflight").write(run_dir)
    assert collect(run_dir).model_order == ["first", "second"]


def test_a_logged_in_users_saved_token_counts_like_hf_token(fake_hub, monkeypatch, tmp_path, env_python):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_TOKEN_PATH", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path))
    (tmp_path / "token").write_text(GRANTED_TOKEN + "\n")
    found = hub.preflight([hub_model("gated", GATED)], env_python, endpoint=fake_hub.url)
    assert found.token_given and found.verdicts[0].kind == hub.OK
    monkeypatch.setenv("HF_TOKEN_PATH", str(tmp_path / "elsewhere"))
    assert hub.preflight([hub_model("gated", GATED)], env_python, endpoint=fake_hub.url).verdicts[0].kind == hub.GATED
