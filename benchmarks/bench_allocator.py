"""CPU training steps with glibc's default allocator settings and with qatgrid.train.keep_freed_memory
(which setup_device applies to every CPU run): step time, minor page faults, system time and peak memory.

    python benchmarks/bench_allocator.py [--steps 100] [--repeats 3] [--concurrent 2]

Each arm runs in a fresh process (allocator state is per process), as a pipeline job does: build
the model, train `--steps` steps of the default shape (8 x 128 tokens, one thread) on a fixed
batch. `--concurrent N` starts N processes of the same arm at once, as `snakemake --cores N`
runs N training jobs side by side. Arms alternate, repeat by repeat, so machine load hits both.
Prints medians and ratios and writes benchmarks/results/allocator-<machine>.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

from common import RESULTS, machine_name

ARMS = ("default", "keep_freed")


def child(arm: str, size: str, bits: int, steps: int, warmup: int = 0) -> dict:
    """One arm in this process: `warmup` steps first (not measured), then `steps` measured ones."""
    import torch

    from qatgrid.model import ModelConfig
    from qatgrid.runtime import keep_freed_memory
    from qatgrid.train import build_trainer, train_step

    torch.set_num_threads(1)
    applied = keep_freed_memory() if arm == "keep_freed" else False
    torch.manual_seed(0)
    mcfg = ModelConfig.from_size(size, vocab_size=1024, seq_len=128, bits=bits)
    lr = {"muon": 0.02, "embed": 0.02, "scalar": 0.02, "adamw": 0.003}
    _, forward, params, opts = build_trainer(mcfg, torch.device("cpu"), False, "muon", lr, 1.0, 0.0)
    g = torch.Generator().manual_seed(0)
    x, y = (torch.randint(0, 1024, (8, 128), generator=g) for _ in range(2))
    for _ in range(warmup):
        train_step(forward, params, opts, x, y, None, 1.0)
    before = resource.getrusage(resource.RUSAGE_SELF)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        train_step(forward, params, opts, x, y, None, 1.0)
        times.append(time.perf_counter() - t0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "applied": applied,
        "step_ms": statistics.median(times) * 1e3,
        "loop_s": sum(times),
        "minor_faults": after.ru_minflt - before.ru_minflt,
        "sys_s": after.ru_stime - before.ru_stime,
        "max_rss_mb": after.ru_maxrss / 1024,
    }


def launch(arm: str, size: str, bits: int, steps: int, concurrent: int, warmup: int = 0) -> list[dict]:
    cmd = [
        sys.executable,
        __file__,
        "--child",
        arm,
        "--size",
        size,
        "--bits",
        str(bits),
        "--steps",
        str(steps),
        "--warmup",
        str(warmup),
    ]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True) for _ in range(concurrent)]
    out = []
    for p in procs:
        stdout, _ = p.communicate()
        if p.returncode:
            raise SystemExit(f"benchmark child failed ({p.returncode}): {' '.join(cmd)}")
        out.append(json.loads(stdout))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--child", choices=ARMS)
    ap.add_argument("--size", default=None)
    ap.add_argument("--sizes", nargs="+", default=["0.1M", "0.16M"])
    ap.add_argument("--bits", type=int, default=6)
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--warmup", type=int, default=0, help="unmeasured steps first (0: a whole run, as a job)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--concurrent", type=int, default=2)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.size, args.bits, args.steps, args.warmup)))
        return

    rows = []
    for size in args.sizes:
        samples = {arm: [] for arm in ARMS}
        for _ in range(args.repeats):
            for arm in ARMS:
                samples[arm] += launch(arm, size, args.bits, args.steps, args.concurrent, args.warmup)
        row = {"size": size, "bits": args.bits}
        for arm in ARMS:
            row[arm] = {
                key: round(statistics.median(s[key] for s in samples[arm]), 3)
                for key in ("step_ms", "loop_s", "minor_faults", "sys_s", "max_rss_mb")
            }
        row["applied"] = all(s["applied"] for s in samples["keep_freed"])
        row["step_ratio"] = round(row["keep_freed"]["step_ms"] / row["default"]["step_ms"], 3)
        row["loop_ratio"] = round(row["keep_freed"]["loop_s"] / row["default"]["loop_s"], 3)
        rows.append(row)
        d, k = row["default"], row["keep_freed"]
        print(
            f"{size} int{args.bits}: step {d['step_ms']:.1f} -> {k['step_ms']:.1f} ms (x{row['step_ratio']:.2f}), "
            f"{args.steps}-step loop {d['loop_s']:.2f} -> {k['loop_s']:.2f} s (x{row['loop_ratio']:.2f}), "
            f"minor faults {d['minor_faults']:.0f} -> {k['minor_faults']:.0f}, "
            f"sys {d['sys_s']:.2f} -> {k['sys_s']:.2f} s, "
            f"peak RSS {d['max_rss_mb']:.0f} -> {k['max_rss_mb']:.0f} MB"
        )
    result = {
        "machine": machine_name(),
        "steps": args.steps,
        "warmup": args.warmup,
        "repeats": args.repeats,
        "concurrent": args.concurrent,
        "batch": "8 x 128",
        "threads": 1,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / f"allocator-{result['machine']}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"glibc allocator: default vs keep_freed_memory, {args.concurrent} processes at once, "
        f"{args.steps} steps of 8 x 128 tokens, one thread each; medians of {args.repeats} repeats x "
        f"{args.concurrent} processes.",
        "",
        "| size | step ms (default -> kept) | loop s | minor faults | sys s | peak RSS MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        d, k = r["default"], r["keep_freed"]
        lines.append(
            f"| {r['size']} int{r['bits']} | {d['step_ms']:.1f} -> {k['step_ms']:.1f} (x{r['step_ratio']:.2f}) | "
            f"{d['loop_s']:.2f} -> {k['loop_s']:.2f} (x{r['loop_ratio']:.2f}) | "
            f"{d['minor_faults']:.0f} -> {k['minor_faults']:.0f} | {d['sys_s']:.2f} -> {k['sys_s']:.2f} | "
            f"{d['max_rss_mb']:.0f} -> {k['max_rss_mb']:.0f} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print(f"wrote {stem}.json and .md")


if __name__ == "__main__":
    main()
