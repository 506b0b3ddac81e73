"""qatgrid benchmarks: training throughput, QAT overhead, MFU, packing gain, peak memory and
pipeline overheads, each against the project's targets.

    python benchmarks/bench.py               # full mode on this machine
    python benchmarks/bench.py --quick       # CPU-CI-sized: fewer sizes and steps
    python benchmarks/bench.py --pipeline    # also time the default pipeline (bench_pipeline.py compares revisions)

Writes benchmarks/results/<machine>.json and .md (<machine>-quick.* in quick mode) and prints
the table. Every timing is a median over repeated steps after warm-up, with its interquartile
range; each size runs in a fresh process (peak memory is per size, all four bit-widths' models
together), its FP16 and QAT models stepping in turn so the QAT overhead ratio is measured
within one run. Models, device settings and steps come from qatgrid.train (setup_device,
build_trainer, train_step), as in the pipeline, on the device and precision it would pick.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

from common import (
    BITS,
    REPO,
    RESULTS,
    TARGETS,
    bf16_peak,
    export,
    fmt_q,
    isolated,
    machine_name,
    mfu,
    packing_gain,
    quartiles,
    run_pipeline,
    step_times,
    timed,
)

from qatgrid.runs import bits_label


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="CI-sized run: fewer sizes, fewer steps")
    ap.add_argument("--pipeline", action="store_true", help="also time the default pipeline end to end")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    import torch

    on_gpu = torch.cuda.is_available()
    threads = 1 if not on_gpu else 4
    if on_gpu:
        sizes = ["3M", "5M", "15M", "50M", "100M"] if args.quick else ["3M", "5M", "8M", "15M", "30M", "50M", "100M"]
        batch, seq, warmup, steps = 32, 1024, 10, 20 if args.quick else 50
        pack_sizes, pack_k, pack_steps = ["3M", "5M"], [1, 2, 4, 8], 20 if args.quick else 50
    else:
        sizes = ["0.1M", "0.16M"] if args.quick else ["0.1M", "0.16M", "0.2M"]  # the sizes CPU configs train
        batch, seq, warmup, steps = 8, 128, 3, 10 if args.quick else 30
        pack_sizes, pack_k, pack_steps = ["0.1M"], [1, min(2, os.cpu_count())], 10 if args.quick else 30

    results = {
        "machine": machine_name(),
        "mode": "quick" if args.quick else "full",
        "torch": torch.__version__,
        "device": torch.cuda.get_device_name(0) if on_gpu else f"cpu ({os.cpu_count()} cores)",
        "targets": TARGETS,
        "throughput": [],
        "qat_overhead": {},
        "mfu": {},
        "packing": [],
        "pipeline": {},
    }

    for size in sizes:
        rows = {
            r["bits"]: r
            for r in isolated(step_times, size=size, batch=batch, seq=seq, warmup=warmup, steps=steps, threads=threads)
        }
        for r in rows.values():
            print(
                f"{size:>6} {bits_label(r['bits']):>5}: {r['tokens_per_s']:>10.0f} tok/s, step {fmt_q(r['step_s'])}, "
                f"RSS {r['peak_rss_mb']:.0f} MB",
                flush=True,
            )
        results["throughput"] += rows.values()
        results["qat_overhead"][size] = {b: rows[b]["step_s"][1] / rows[16]["step_s"][1] for b in BITS[1:]}
        if on_gpu:
            peak = bf16_peak(torch.cuda.get_device_name(0))
            for r in rows.values():
                r["mfu"] = mfu(r["tokens_per_s"], r["n_params"], size, seq, peak)
            results["mfu"][size] = {bits_label(b): r["mfu"] for b, r in rows.items()}

    for size in pack_sizes:
        p = packing_gain(size, pack_k, batch, seq, pack_steps, threads)
        results["packing"].append(p)
        print(f"packing {size}: " + ", ".join(f"K={k}: {g:.2f}x" for k, g in p["gain"].items()), flush=True)

    snakemake = [sys.executable, "-m", "snakemake"]
    dry = timed(snakemake + ["-n", "--quiet", "rules", "--configfile", "config/paper.yaml"], REPO, 3)
    results["pipeline"]["dry_run_paper_s"] = quartiles(dry)
    print(f"snakemake -n (paper grid): median {statistics.median(dry):.1f} s", flush=True)
    if args.pipeline:
        with tempfile.TemporaryDirectory() as tmp:
            export(None, Path(tmp))
            wall = run_pipeline(Path(tmp), {})["wall_s"]
        results["pipeline"]["default_pipeline_s"] = wall
        print(f"default pipeline: {wall:.0f} s", flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / (results["machine"] + ("-quick" if args.quick else ""))
    if stem.with_suffix(".json").exists():  # keep the sections other benchmarks wrote (bench_compile.py: run_cost)
        results = {**json.loads(stem.with_suffix(".json").read_text()), **results}
    (stem.with_suffix(".json")).write_text(json.dumps(results, indent=1, default=str) + "\n")
    (stem.with_suffix(".md")).write_text(markdown(results))
    print(markdown(results))
    print(f"wrote {stem}.json and {stem}.md")


def markdown(res: dict) -> str:
    on_gpu = any(r["device"].startswith("cuda") for r in res["throughput"])
    nm = "not measured (no CUDA device)"
    lines = [
        f"# Benchmarks: {res['device']} ({res['mode']} mode, torch {res['torch']})",
        "",
        "Step times are medians [interquartile range] over timed steps after warm-up.",
        "",
        "## Training throughput",
        "",
        "| size | params | bits | tokens/s | step time | peak RSS MB | GPU max alloc MB | MFU |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["throughput"]:
        mfu = f"{r['mfu']:.1%}" if r.get("mfu") is not None else "–"
        gpu_mem = f"{r['gpu_max_allocated_mb']:.0f}" if "gpu_max_allocated_mb" in r else "–"
        lines.append(
            f"| {r['size']} | {r['n_params']:,} | {bits_label(r['bits'])} | "
            f"{r['tokens_per_s']:,.0f} | {fmt_q(r['step_s'])} | {r['peak_rss_mb']:.0f} | {gpu_mem} | {mfu} |"
        )
    target = res["targets"]["qat_overhead_gpu" if on_gpu else "qat_overhead_cpu"]
    lines += [
        "",
        f"## QAT overhead (QAT step time / FP16 step time; target ≤ {target:.2f} on {'GPU' if on_gpu else 'CPU'})",
        "",
        "| size | int8 | int6 | int4 | met |",
        "|---|---|---|---|---|",
    ]
    for size, ratios in res["qat_overhead"].items():
        lines.append(
            f"| {size} | "
            + " | ".join(f"{ratios[b]:.3f}" for b in (8, 6, 4))
            + f" | {'yes' if max(ratios.values()) <= target else 'no'} |"
        )
    if not on_gpu:
        lines.append(f"| GPU (target ≤ {res['targets']['qat_overhead_gpu']:.2f}) | {nm} | | | |")
    lines += ["", "## Model FLOPs utilisation (bf16; targets ≥ 40% at 100M, ≥ 30% at 50M on an H100)", ""]
    if res["mfu"]:
        lines += ["| size | " + " | ".join(next(iter(res["mfu"].values())).keys()) + " |", "|---|---|---|---|---|"]
        lines += [
            f"| {s} | " + " | ".join(f"{v:.1%}" if v is not None else "unknown peak" for v in m.values()) + " |"
            for s, m in res["mfu"].items()
        ]
    else:
        lines.append(nm)
    lines += [
        "",
        "## Packing gain (aggregate tokens/s of K concurrent INT6 runs / one run;"
        " target ≥ 4× at K = 8 for 3M, 5M on GPU)",
        "",
    ]
    ks = list(res["packing"][0]["gain"])
    lines += ["| size | " + " | ".join(f"K={k}" for k in ks) + " |", "|---|" + "---|" * len(ks)]
    lines += [f"| {p['size']} | " + " | ".join(f"{g:.2f}×" for g in p["gain"].values()) + " |" for p in res["packing"]]
    if not on_gpu:
        lines.append(f"\nGPU packing (3M, 5M at K = 1, 2, 4, 8): {nm}.")
    dry = res["pipeline"]["dry_run_paper_s"]
    lines += [
        "",
        "## Pipeline overheads",
        "",
        "| what | measured | target |",
        "|---|---|---|",
        f"| `snakemake -n` on config/paper.yaml | {dry[1]:.1f} s [{dry[0]:.1f}–{dry[2]:.1f}] | ≤ 10 s |",
    ]
    wall = res["pipeline"].get("default_pipeline_s")
    lines.append(
        f"| default pipeline, `--cores all` | {f'{wall:.0f} s' if wall else 'not measured (run with --pipeline)'} "
        "| ≤ 600 s on 2 cores |"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
