"""CPU training-step time with the optimisers the pipeline used before (torch.optim.Muon, whose
Newton-Schulz runs in bf16, and torch.optim.Adam) and after (qatgrid.optim.muon.Muon in fp32 on CPU and
qatgrid.optim.adam.Adam, as the pipeline builds them), at the CPU sizes of the default grid (0.16M INT6
is the profiled case of the issue).

    python benchmarks/muon_precision.py [--steps 30] [--bits 6]
    ONEDNN_MAX_CPU_ISA=AVX2 python benchmarks/muon_precision.py   # as a CPU without native bf16

Both arms step the same model shape on the same batch (default config: 8 x 128 tokens, one
thread) in one process, alternating step by step so machine load hits both alike. Prints the
medians and their ratio and writes benchmarks/results/muon_precision.json and .md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import torch
from common import LR, RESULTS, cpu_flags

from qatgrid.model import GPT, ModelConfig
from qatgrid.optim import build_optimizers, split_params
from qatgrid.train import train_step


def arm(size: str, bits: int, before: bool, seq_len: int):
    torch.manual_seed(0)
    model = GPT(ModelConfig.from_size(size, vocab_size=1024, seq_len=seq_len, bits=bits))
    opts = build_optimizers(model, "muon", LR, 1.0, 0.0)
    if before:  # what the pipeline ran before: torch.optim.Muon (bf16 Newton-Schulz) and torch.optim.Adam
        matrices, _, _ = split_params(model)
        opts = [
            torch.optim.Muon(matrices, lr=LR["muon"], momentum=0.95, nesterov=True, weight_decay=0.0),
            torch.optim.Adam(opts[1].param_groups, lr=LR["embed"], betas=(0.9, 0.95), eps=1e-8),
        ]
    return model, list(model.parameters()), opts


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--bits", type=int, default=6)
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x, y = (torch.randint(0, 1024, (args.batch, args.seq), generator=g) for _ in range(2))
    rows = []
    for size in ("0.1M", "0.16M", "0.2M"):
        arms = {name: arm(size, args.bits, name == "before", args.seq) for name in ("before", "after")}
        times = {name: [] for name in arms}
        for i in range(args.warmup + args.steps):
            for name, (model, params, opts) in arms.items():
                t0 = time.perf_counter()
                train_step(model, params, opts, x, y, None, 1.0)
                if i >= args.warmup:
                    times[name].append(time.perf_counter() - t0)
        before, after = (statistics.median(times[n]) * 1e3 for n in ("before", "after"))
        rows.append(
            {
                "size": size,
                "bits": args.bits,
                "before_ms": round(before, 2),
                "after_ms": round(after, 2),
                "speedup": round(before / after, 2),
            }
        )
        print(
            f"{size} int{args.bits}: step {before:.1f} ms (torch.optim Muon bf16 NS + Adam) -> {after:.1f} ms "
            f"(qatgrid Muon fp32 NS + Adam), x{before / after:.2f}"
        )
    flags = cpu_flags()
    result = {
        "machine": platform.machine(),
        "processor": platform.processor(),
        "torch": torch.__version__,
        "native_bf16": bool(flags & {"avx512_bf16", "amx_bf16"}),
        "onednn_max_cpu_isa": os.environ.get("ONEDNN_MAX_CPU_ISA"),
        "threads": 1,
        "batch": args.batch,
        "seq_len": args.seq,
        "steps": args.steps,
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    stem = args.out / (
        "muon_precision" + (f"-{result['onednn_max_cpu_isa'].lower()}" if result["onednn_max_cpu_isa"] else "")
    )
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        "| size | bits | step before (ms, bf16 NS) | step after (ms, fp32 NS) | speed-up |",
        "|---|---|---|---|---|",
    ]
    lines += [f"| {r['size']} | {r['bits']} | {r['before_ms']} | {r['after_ms']} | {r['speedup']}x |" for r in rows]
    stem.with_suffix(".md").write_text(
        f"Median CPU training step (one thread, batch {args.batch} x {args.seq}, {args.steps} steps after "
        f"{args.warmup} warm-up, arms alternating in one process), torch {torch.__version__}, native bf16: "
        f"{result['native_bf16']}, ONEDNN_MAX_CPU_ISA: {result['onednn_max_cpu_isa'] or 'unset'}.\n\n"
        + "\n".join(lines)
        + "\n"
    )


if __name__ == "__main__":
    main()
