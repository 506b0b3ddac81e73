"""Wall time of the default pipeline (`snakemake --cores all` on a fresh copy), for one or more git
revisions measured in one session, so that a change is compared with its baseline on the same machine.

    python benchmarks/bench_pipeline.py                        # the working tree, once
    python benchmarks/bench_pipeline.py --revs a5b1624 HEAD --repeats 2
    python benchmarks/bench_pipeline.py --revs a5b1624 HEAD --env ONEDNN_MAX_CPU_ISA=AVX2
    python benchmarks/bench_pipeline.py --revs a5b1624 HEAD+benchmarks/configs/default-grid-a5b1624.yaml

A revision may carry a config file as REV+FILE (FILE read from the working tree): the pipeline then
runs with `--configfile FILE` on top of that revision's config/config.yaml, so that one revision's
code can be timed on another revision's grid (benchmarks/configs/ holds such grids).

Each revision is exported (`git archive`) into a temporary folder and run with this interpreter's
environment; repeats alternate between revisions so that machine load hits them alike. `--env`
sets variables for the pipeline: `ONEDNN_MAX_CPU_ISA=AVX2` makes oneDNN ignore a CPU's native bf16
instructions, which is how a CPU without them (most laptops) runs bf16 matmuls. Prints, and writes
to benchmarks/results/pipeline-<machine>[-<env>].json and .md: median wall time per revision, its
runs and jobs, and each revision's time relative to the first.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

from common import REPO, RESULTS, cpu_flags, export, machine_name, run_pipeline


def split_spec(spec: str | None) -> tuple[str | None, Path | None]:
    """'REV' or 'REV+CONFIG' -> (rev, config file or None); None is the working tree."""
    if spec is None:
        return None, None
    rev, _, config = spec.partition("+")
    if config and not (REPO / config).is_file():
        raise SystemExit(f"config file {config!r} (in {spec!r}) not found under {REPO}")
    return rev, (REPO / config if config else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--revs",
        nargs="*",
        default=[None],
        help="git revisions, each optionally REV+CONFIG_FILE (default: the working tree)",
    )
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--env", nargs="*", default=[], metavar="NAME=VALUE")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--name", default="pipeline", help="results file stem (before the machine name)")
    args = ap.parse_args()
    env = dict(item.split("=", 1) for item in args.env)
    labels = [rev or "working tree" for rev in args.revs]
    samples: dict[str, list[dict]] = {label: [] for label in labels}
    commits = {}
    for repeat in range(args.repeats):
        for rev, label in zip(args.revs, labels):
            commit_rev, configfile = split_spec(rev)
            with tempfile.TemporaryDirectory() as tmp:
                commits[label] = export(commit_rev, Path(tmp))
                result = run_pipeline(Path(tmp), env, configfile)
            samples[label].append(result)
            print(
                f"[{repeat + 1}/{args.repeats}] {label} ({commits[label]}): {result['wall_s']:.1f} s, "
                f"{result['runs']} runs, {result['jobs']} jobs",
                flush=True,
            )

    flags = cpu_flags()
    rows = []
    first = statistics.median(s["wall_s"] for s in samples[labels[0]])
    for label in labels:
        walls = [s["wall_s"] for s in samples[label]]
        med = statistics.median(walls)
        rows.append(
            {
                "rev": label,
                "commit": commits[label],
                "walls_s": [round(w, 1) for w in walls],
                "median_s": round(med, 1),
                "runs": samples[label][-1]["runs"],
                "jobs": samples[label][-1]["jobs"],
                "relative_to_first": round(med / first, 3),
            }
        )
        print(f"{label} ({commits[label]}): median {med:.1f} s over {len(walls)}, x{med / first:.2f} of {labels[0]}")
    result = {
        "machine": machine_name(),
        "cpus": os.cpu_count(),
        "env": env,
        "native_bf16": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "repeats": args.repeats,
        "rows": rows,
    }
    suffix = "".join(f"-{k.lower()}-{v.lower()}" for k, v in env.items())
    stem = args.out / f"{args.name}-{machine_name()}{suffix}"
    args.out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"Default pipeline, `snakemake --cores all` from scratch, {os.cpu_count()} CPUs, "
        f"native bf16: {result['native_bf16']}, env: {env or 'none'}.",
        "",
        "| revision | commit | runs | jobs | wall (s), each | median (s) | vs first |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['rev']} | {r['commit']} | {r['runs']} | {r['jobs']} | {', '.join(map(str, r['walls_s']))} | "
        f"{r['median_s']} | {r['relative_to_first']:.2f}x |"
        for r in rows
    ]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
