"""Time `qatgrid status` on the paper grid with a results tree holding all 1,345 runs.

Builds the tree in a temporary folder (tests/synthetic.py's fill_results for every run, then
20 of them turned into runs in flight and 10 into failed runs with curves and logs), runs
`qatgrid status --configfile config/paper.yaml` in fresh processes and prints and writes the
wall times to benchmarks/results/status_<machine>.json.

    python benchmarks/status_time.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, RESULTS

sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]

from synthetic import fill_results  # noqa: E402

from qatgrid.config import load_config  # noqa: E402
from qatgrid.runs import expand_runs  # noqa: E402


def build_tree(results: Path) -> int:
    os.chdir(REPO)
    runs = expand_runs(load_config(["config/paper.yaml"]))
    fill_results(results, runs)
    now = time.time()
    for i, run in enumerate(runs[:30]):  # in flight (fresh curve) or failed (stale, with a checkpoint)
        (results / "runs" / run.id / "metrics.json").unlink()
        curve = results / "runs" / run.id / "curve.jsonl"
        curve.write_text(
            "".join(
                json.dumps({"run_id": run.id, "step": s, "steps": 3000, "train_loss": 4.0, "eta_s": 60.0, "time": now})
                + "\n"
                for s in range(10, 1510, 10)
            )
        )
        log = results / "logs" / "train" / f"{run.id}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(f"step {s}\n" for s in range(200)))
        if i >= 20:
            (results / "state" / run.id).mkdir(parents=True, exist_ok=True)
            (results / "state" / run.id / "last.pt").write_bytes(b"x")
            for p in (curve, log, results / "state" / run.id / "last.pt"):
                os.utime(p, (now - 7200, now - 7200))
    return len(runs)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    try:
        n = build_tree(tmp / "results")
        cmd = [
            sys.executable,
            "-m",
            "qatgrid.cli",
            "status",
            "--configfile",
            "config/paper.yaml",
            "--results",
            str(tmp / "results"),
        ]
        env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
        times, out = [], ""
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            out = subprocess.run(cmd, cwd=REPO, env=env, check=True, capture_output=True, text=True).stdout
            times.append(time.perf_counter() - t0)
    finally:
        shutil.rmtree(tmp)
    total = next(line for line in out.splitlines() if line.startswith("total"))
    print(total)
    print(
        f"qatgrid status on the paper grid ({n} runs): median {statistics.median(times):.2f} s, "
        f"min {min(times):.2f} s, max {max(times):.2f} s over {args.repeats} runs ({os.cpu_count()} CPUs)"
    )
    res = {
        "runs": n,
        "seconds": times,
        "median_s": statistics.median(times),
        "cpus": os.cpu_count(),
        "total_row": total,
    }
    name = f"status_{platform.system().lower()}-{platform.machine().lower()}-{os.cpu_count()}core.json"
    out_path = RESULTS / name
    out_path.write_text(json.dumps(res, indent=2) + "\n")
    print(f"wrote {out_path.relative_to(REPO)}")


if __name__ == "__main__":
    main()
