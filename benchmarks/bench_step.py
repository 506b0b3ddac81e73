"""Where one CPU-miniature training step spends its time, beside what its matrix products alone cost.

    python benchmarks/bench_step.py                      # the default's sizes, INT6, one thread
    python benchmarks/bench_step.py --sizes 0.1M --bits 16 6

For each size: the median step (forward, backward, gradient clipping, optimiser; timed
separately, `--steps` steps after `--warmup`); the output head alone (tied projection, soft-cap,
cross-entropy, forward and backward); and the step's matrix products alone: a profiled pass of
`--profile-steps` steps counts them by shape (and their FLOPs), then each shape is timed by itself
on warm operands and the times are summed. That sum is close to a floor: what a step would cost
if nothing but its products took time. Nothing here is timed under the profiler, which slows
large elementwise operators several-fold. Settings as the default pipeline (batch 8 x 128,
vocabulary 1024, `setup_device` on CPU, eager float32). Writes benchmarks/results/step-<machine>.json and .md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from common import DEFAULT_TRAIN, LR, RESULTS, machine_name
from torch.profiler import ProfilerActivity, profile

from qatgrid.model import ModelConfig, rms_norm, softcap
from qatgrid.runtime import setup_device
from qatgrid.train import build_trainer, train_step

MATMUL_OPS = {"aten::mm": torch.mm, "aten::addmm": torch.addmm, "aten::bmm": torch.bmm}
GRAD_CLIP = DEFAULT_TRAIN["grad_clip"]


def phase_times(forward, params, optimizers, x, y, steps: int) -> dict[str, float]:
    """Median milliseconds of each part of qatgrid.train.train_step (the same calls), timed apart."""
    parts = {"forward": [], "backward": [], "clip": [], "optimiser": []}
    for _ in range(steps):
        t0 = time.perf_counter()
        loss = forward(x, y)
        t1 = time.perf_counter()
        for opt in optimizers:
            opt.zero_grad(set_to_none=True)
        loss.backward()
        t2 = time.perf_counter()
        torch.nn.utils.clip_grad_norm_(params, GRAD_CLIP)
        t3 = time.perf_counter()
        for opt in optimizers:
            opt.step()
        t4 = time.perf_counter()
        for key, dt in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
            parts[key].append(dt * 1e3)
    return {key: statistics.median(v) for key, v in parts.items()}


def median_ms(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def matmul_shapes(forward, params, optimizers, x, y, steps: int) -> tuple[dict, float]:
    """{(op, input shapes): calls per step} of the step's matrix products, and their FLOPs per step.
    The profiler is used for counting only: it slows large elementwise operators several-fold,
    so its times would misstate where an unprofiled step goes."""
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        for _ in range(steps):
            train_step(forward, params, optimizers, x, y, None, GRAD_CLIP)
    calls, flops = {}, 0.0
    for ev in prof.key_averages(group_by_input_shape=True):
        if ev.key in MATMUL_OPS:
            shapes = tuple(tuple(s) for s in ev.input_shapes if isinstance(s, list) and s)
            calls[(ev.key, shapes)] = calls.get((ev.key, shapes), 0) + ev.count / steps
            flops += ev.flops / steps
    return calls, flops


def isolated_matmul_ms(calls: dict) -> float:
    """The step's products, each timed alone on warm random operands: a floor for their share."""
    total = 0.0
    for (op, shapes), n in calls.items():
        args = [torch.randn(s) for s in shapes]
        total += n * median_ms(lambda: MATMUL_OPS[op](*args))
    return total


def head_ms(model, batch: int, seq: int, vocab: int, softcap_value: float) -> float:
    """Forward and backward of the output head alone: tied projection, soft-cap, cross-entropy."""
    h = torch.randn(batch * seq, model.cfg.d_model, requires_grad=True)
    targets = torch.randint(0, vocab, (batch * seq,))

    def step():
        logits = softcap(F.linear(rms_norm(h), model.embed.weight), softcap_value)
        F.cross_entropy(logits, targets).backward()

    return median_ms(step)


def measure(
    size: str, bits: int, batch: int, seq: int, vocab: int, warmup: int, steps: int, profile_steps: int
) -> dict:
    torch.manual_seed(0)
    cfg = ModelConfig.from_size(size, vocab_size=vocab, seq_len=seq, bits=bits)
    model, forward, params, optimizers = build_trainer(cfg, torch.device("cpu"), False, "muon", LR, 1.0, 0.0)
    x, y = torch.randint(0, vocab, (batch, seq)), torch.randint(0, vocab, (batch, seq))
    for _ in range(warmup):
        train_step(forward, params, optimizers, x, y, None, GRAD_CLIP)
    parts = phase_times(forward, params, optimizers, x, y, steps)
    calls, flops = matmul_shapes(forward, params, optimizers, x, y, profile_steps)
    matmul = isolated_matmul_ms(calls)
    step = sum(parts.values())
    return {
        "size": size,
        "bits": bits,
        "step_ms": step,
        "parts_ms": parts,
        "head_ms": head_ms(model, batch, seq, vocab, cfg.logit_softcap),
        "matmul_gflop_per_step": flops / 1e9,
        "matmul_calls_per_step": sum(calls.values()),
        "matmul_alone_ms": matmul,
        "matmul_alone_gflops": flops / 1e9 / (matmul / 1e3),
        "step_over_matmul": step / matmul,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="*", default=["0.1M", "0.16M", "0.2M"])
    ap.add_argument("--bits", nargs="*", type=int, default=[6])
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=128)
    ap.add_argument("--vocab", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--profile-steps", type=int, default=10)
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    setup_device(torch.device("cpu"), args.threads)
    rows = []
    for size in args.sizes:
        for bits in args.bits:
            r = measure(size, bits, args.batch, args.seq, args.vocab, args.warmup, args.steps, args.profile_steps)
            rows.append(r)
            print(
                f"{size} bits {bits}: step {r['step_ms']:.1f} ms (head {r['head_ms']:.1f} ms), its matrix products "
                f"alone {r['matmul_alone_ms']:.1f} ms at {r['matmul_alone_gflops']:.0f} GFLOP/s "
                f"(step x{r['step_over_matmul']:.2f})",
                flush=True,
            )
    result = {
        "machine": machine_name(),
        "torch": torch.__version__,
        "threads": args.threads,
        "batch": args.batch,
        "seq": args.seq,
        "vocab": args.vocab,
        "rows": rows,
    }
    stem = args.out / f"step-{machine_name()}"
    args.out.mkdir(parents=True, exist_ok=True)
    stem.with_suffix(".json").write_text(json.dumps(result, indent=1) + "\n")
    lines = [
        f"CPU training step, batch {args.batch} x {args.seq}, vocabulary {args.vocab}, {args.threads} thread(s), "
        f"torch {torch.__version__}: medians of {args.steps} steps. Head: forward and backward of the tied "
        "projection, soft-cap and cross-entropy alone. Matrix products alone: each of the step's products "
        "(counted by the profiler) timed by itself on warm operands, summed.",
        "",
        "| size | bits | step (ms) | forward | backward | clip | optimiser | head | matrix products alone "
        "| their GFLOP/step | their GFLOP/s | step / products alone |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        p = r["parts_ms"]
        lines.append(
            f"| {r['size']} | {r['bits']} | {r['step_ms']:.1f} | {p['forward']:.1f} | {p['backward']:.1f} | "
            f"{p['clip']:.2f} | {p['optimiser']:.2f} | {r['head_ms']:.1f} | {r['matmul_alone_ms']:.1f} | "
            f"{r['matmul_gflop_per_step']:.3f} | {r['matmul_alone_gflops']:.0f} | {r['step_over_matmul']:.2f} |"
        )
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
