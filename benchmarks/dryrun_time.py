"""Dry-run time of the large grids against Snakemake's start-up, for one or more revisions.

    python benchmarks/dryrun_time.py                       # the working tree
    python benchmarks/dryrun_time.py --revs HEAD~3 .       # an older revision beside the working tree

Each revision is copied into a temporary folder (`git archive`; `.` is the working tree's workflow
files), so no results or Snakemake state of the clone are read, and each command runs there with
that copy's package first on PYTHONPATH. Commands, repeated `--repeats` times, interleaved across
revisions so that a busy machine slows all of them alike:

- `snakemake --version`: the interpreter and Snakemake's imports, nothing of the workflow;
- start-up: `snakemake -n --quiet rules` on a two-run grid (FP16 and INT6, the fewest the config
  checks accept): the workflow parsed, the config validated, a DAG of a dozen jobs. This is the
  baseline the large grids are compared with: everything but the grid's size;
- `snakemake -n --quiet rules --configfile config/paper.yaml` and `config/extension.yaml`.

Writes benchmarks/results/dryrun-<machine>.md (medians, every repeat, and each median over the
start-up's) and prints the table. Standalone: no other benchmark script is imported.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "rules", "workflow", "config", "envs", "profiles", "src", "benchmarks/results")
TWO_RUNS = """\
analysis: {heldout_sizes: []}
sweeps:
  - {phase: phase2, bits: [16, 6], sizes: ["0.1M"], warmdown_fracs: [0.33], seeds: [0]}
audit:
  expected_runs: {phase2: 2, total: 2}
"""
COMMANDS = {
    "snakemake --version": ["--version"],
    "start-up (two-run grid)": ["-n", "--quiet", "rules", "--configfile", "two-runs.yaml"],
    "paper grid (1,345 runs)": ["-n", "--quiet", "rules", "--configfile", "config/paper.yaml"],
    "extension grid (1,240 runs)": ["-n", "--quiet", "rules", "--configfile", "config/extension.yaml"],
}
BASELINE = "start-up (two-run grid)"


def machine_name() -> str:
    name = f"cpu-{platform.machine()}-{os.cpu_count()}core"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def checkout(rev: str, dest: Path) -> str:
    """The workflow files of `rev` (`.`: the working tree) in `dest`; returns a label for the table."""
    dest.mkdir(parents=True)
    if rev == ".":
        for name in WORKFLOW_FILES:
            src = REPO / name
            if src.exists():
                (dest / name).parent.mkdir(parents=True, exist_ok=True)
                (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True).stdout
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True)
        return f"{head.stdout.strip()}{'+changes' if dirty.strip() else ''}"
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    short = subprocess.run(["git", "rev-parse", "--short", rev], cwd=REPO, capture_output=True, text=True, check=True)
    return short.stdout.strip()


def run_once(snakemake: str, args: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(cwd / "src")}
    t0 = time.perf_counter()
    proc = subprocess.run([snakemake, *args], cwd=cwd, env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"snakemake {' '.join(args)} failed in {cwd}:\n{proc.stdout[-2000:]}\n{proc.stderr[-2000:]}")
    return elapsed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--revs", nargs="+", default=["."], help="git revisions; '.' is the working tree (default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = ap.parse_args()
    snakemake = str(Path(sys.executable).with_name("snakemake"))
    if not Path(snakemake).exists():
        snakemake = shutil.which("snakemake") or "snakemake"

    with tempfile.TemporaryDirectory(prefix="dryrun-") as tmp:
        copies = {}
        for i, rev in enumerate(args.revs):
            dest = Path(tmp) / f"rev{i}"
            label = checkout(rev, dest)
            (dest / "two-runs.yaml").write_text(TWO_RUNS)
            copies[label] = dest
        times = {(label, name): [] for label in copies for name in COMMANDS}
        for dest in copies.values():  # a first, untimed pass: bytecode compiled, files cached
            run_once(snakemake, COMMANDS[BASELINE], dest)
        for r in range(args.repeats):
            for name, cmd in COMMANDS.items():
                for label, dest in copies.items():
                    times[label, name].append(run_once(snakemake, cmd, dest))
                    print(f"repeat {r + 1}: {label:>16}  {name:<28} {times[label, name][-1]:6.2f} s", flush=True)

    labels = list(copies)
    lines = [
        f"# Dry-run time, {machine_name()}",
        "",
        f"`python benchmarks/dryrun_time.py --revs {' '.join(args.revs)}`; median of {args.repeats} runs "
        "(every run in brackets), seconds, and the median over the start-up's (the same workflow on a "
        "two-run grid: parse, config validation, a DAG of a dozen jobs). Snakemake "
        f"{subprocess.run([snakemake, '--version'], capture_output=True, text=True).stdout.strip()}.",
        "",
        "| command | " + " | ".join(labels) + " |",
        "|---|" + "---|" * len(labels),
    ]
    for name in COMMANDS:
        cells = []
        for label in labels:
            t = times[label, name]
            base = statistics.median(times[label, BASELINE])
            ratio = f", {statistics.median(t) / base:.1f}× start-up" if name != BASELINE else ""
            cells.append(f"{statistics.median(t):.2f} s{ratio} [{', '.join(f'{x:.2f}' for x in t)}]")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"dryrun-{machine_name()}.md"
    tmp_path = path.with_suffix(".md.tmp")
    tmp_path.write_text(text)
    os.replace(tmp_path, path)
    print(text)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
