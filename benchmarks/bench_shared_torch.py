"""Could one parent that has imported torch serve several releases? (issue 21, item 3)

Run with the python of one bisect env (it imports torch, numpy and what they pull in, once),
after a bisect has probed the releases named (their envs under <cache>/bisect/tf-<v>/,
their plans under <results>/bisect/.batch/tf-<v>/, their cells under
<results>/bisect/<model>/tf-<v>/):

    .cache/bisect/tf-4.40.2/bin/python benchmarks/bench_shared_torch.py \
        --cache .cache --results results 4.44.0 4.49.0 4.41.2

For each release it forks a child that puts that release's site-packages first on its path,
imports what the runner's parent imports (transformers and the warmed modules: torch is
already there), runs the plan's first cell in process, and compares the cell's status and
outputs with the cell the release's own env wrote. Also printed: which numpy the children
ran with (the parent's, not the release's: whatever torch imported comes from the parent).
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def child(site: str, plan: dict, out: Path) -> None:
    try:
        sys.path.insert(0, site)
        start = time.perf_counter()
        from probes.runner import warm_imports

        warm_imports(plan["cells"])
        import numpy
        import transformers

        import_s = time.perf_counter() - start
        from probes.cell import Cell

        start = time.perf_counter()
        data = Cell(dict(plan["cells"][0])).run()
        result = {
            "transformers": transformers.__version__,
            "numpy": numpy.__version__,
            "import_s": round(import_s, 2),
            "cell_s": round(time.perf_counter() - start, 2),
            "status": data.get("status"),
            "fingerprint": data.get("fingerprint"),
        }
        out.write_text(json.dumps(result, default=str))
    except BaseException as exc:  # noqa: BLE001 - the child reports, then exits
        out.write_text(json.dumps({"error": repr(exc)}))
    os._exit(0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cache", type=Path, default=ROOT / ".cache")
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("releases", nargs="+")
    args = parser.parse_args()
    start = time.perf_counter()
    import numpy
    import torch  # noqa: F401

    report: dict = {"torch_import_s": round(time.perf_counter() - start, 2), "parent_numpy": numpy.__version__}
    for version in args.releases:
        site = glob.glob(str(args.cache / "bisect" / f"tf-{version}" / "lib" / "python3.*" / "site-packages"))[0]
        plan = json.loads((args.results / "bisect" / ".batch" / f"tf-{version}" / "_plan.json").read_text())
        model = plan["cells"][0]["model"]
        out = Path(f"/tmp/shared-torch-{os.getpid()}-{version}.json")
        pid = os.fork()
        if pid == 0:
            child(site, plan, out)
        os.waitpid(pid, 0)
        got = json.loads(out.read_text())
        out.unlink()
        own = json.loads((args.results / "bisect" / model / f"tf-{version}" / f"{model}.json").read_text())
        own_numpy = glob.glob(f"{site}/numpy-*.dist-info")
        got.update(
            own_numpy=Path(own_numpy[0]).name.removeprefix("numpy-").removesuffix(".dist-info") if own_numpy else None,
            same_status=got.get("status") == own["status"],
            same_outputs=got.pop("fingerprint", None) == own.get("fingerprint"),
        )
        report[version] = got
    print(json.dumps(report, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
