"""What each section of benchmarks/gpu_check.py is expected to cost on a GPU, and the time boxes
that follow from it. gpu_check.py prints this model at its start; tests/test_gpu_check.py checks
that every box holds its section's modelled cost with the margin and that the boxes fit the budget.

A section's cost is its fresh processes' start-up, its compiles (from an empty cache, or loads
from the warm cache the precompile section filled) and its steps, each step timed as

    step_s = max(STEP_FLOOR_S, flops_per_token · batch · seq / (peak · MFU))

with flops_per_token = 6·N + 12·L·d·T (common.flops_per_token). The peak is the slowest GPU the
check is planned for (H100 PCIe's dense bf16, 756 TFLOP/s; H100 SXM/NVL and H200 are faster), the
MFUs are assumptions below the project's targets, and the compile times are assumptions too:
replace them by the figures the first GPU check measures (its precompile section prints the first
step of every shape; the compile section the cold and warm first steps at 3M and 15M).
"""

from __future__ import annotations

import heapq
import math

from common import flops_per_token, step_memory_estimate

PEAK_BF16 = 756e12  # H100 PCIe, dense bf16 (common.BF16_PEAK)
PEAK_FP32 = 51e12  # H100 PCIe, fp32 without TF32 (the correctness section's reference arm; SXM 67)
MFU = {"3M": 0.05, "15M": 0.15, "50M": 0.25, "100M": 0.30}  # assumed; targets: 30% at 50M, 40% at 100M
MFU_ABOVE = 0.30  # sizes above 100M (the memory section's 350M): assumed as 100M's
MFU_FP32 = 0.30  # of PEAK_FP32, with an efficient attention kernel
EAGER_OVER_COMPILED = 2.0  # an eager bf16 step against the compiled one (the gradient check's)
STEP_FLOOR_S = 0.02  # a step's launch-bound floor: Muon's Newton-Schulz runs on every matrix
PROCESS_S = 8.0  # a fresh Python process to its first step: import torch, CUDA context, model
WARM_GRAPH_S = 6.0  # one graph from the warm cache: Dynamo still traces, Inductor's caches hit
GPU_BYTES = 80 * 2**30  # the smallest GPU planned for (H100 80 GB)
MEMORY_SHARE = 0.85  # of it, for shapes the precompile section runs side by side
MARGIN = 1.5  # every box ≥ its modelled cost × MARGIN
PIPELINE_FIXED_S = 45.0  # Snakemake's start and DAG, the data job, the table jobs (CPU smoke: ~30 s)


def cold_train_graph_s(n_layer: int) -> float:
    """Inductor compiling a training step (forward, backward) from an empty cache: Dynamo unrolls
    the layers, so the graph grows with depth."""
    return 15.0 + 4.0 * n_layer


def cold_eval_graph_s(n_layer: int) -> float:
    """The evaluation forward (no_grad, eval mode): a graph of its own, forward only."""
    return 5.0 + 1.5 * n_layer


def n_layer_of(size: str) -> int:
    from qatgrid.sizes import SIZES

    return SIZES[size][0]


def step_s(size: str, batch: int, seq: int, fp32: bool = False) -> float:
    """One compiled training step (bf16; fp32 eager without TF32 for the reference arm)."""
    from qatgrid.sizes import SIZES, size_to_number

    n_layer, d_model = SIZES[size]
    flops = flops_per_token(size_to_number(size), n_layer, d_model, seq) * batch * seq
    rate = PEAK_FP32 * MFU_FP32 if fp32 else PEAK_BF16 * MFU.get(size, MFU_ABOVE)
    return max(STEP_FLOOR_S, flops / rate)


def eval_s(size: str, batch: int, seq: int, tokens: int) -> float:
    """An evaluation of `tokens` validation tokens in batches: forward only, a third of a step each."""
    return math.ceil(tokens / (batch * seq)) * step_s(size, batch, seq) / 3


def schedule(tasks: list[tuple[str, float, float]], capacity: float) -> list[list[str]]:
    """The order the precompile section starts its shapes in: largest first, each as soon as the
    memory of those running and its own fit in `capacity` (one too large even alone runs alone).
    tasks: (name, bytes, seconds); returns the groups that start together, for the model below."""
    return [[name for name, _, _ in group] for group in _simulate(tasks, capacity)[1]]


def makespan(tasks: list[tuple[str, float, float]], capacity: float) -> float:
    return _simulate(tasks, capacity)[0]


def _simulate(tasks, capacity):
    todo = sorted(tasks, key=lambda t: -t[1])
    running: list[tuple[float, float]] = []  # (end, bytes)
    now, used, groups = 0.0, 0.0, []
    while todo:
        group = []
        for t in list(todo):
            if not running and not group or used + t[1] <= capacity:
                group.append(t)
                todo.remove(t)
                used += t[1]
                heapq.heappush(running, (now + t[2], t[1]))
        if group:
            groups.append(group)
        end, freed = heapq.heappop(running)
        now, used = end, used - freed
    return max([now, *(end for end, _ in running)]), groups


def precompile_tasks(c: dict) -> list[tuple[str, float, float]]:
    """(shape, bytes, seconds) of each shape the precompile section compiles: its process, the
    training graph, the evaluation graph and their first calls."""
    out = []
    for size in c["sizes"]:
        layers = n_layer_of(size)
        seconds = (
            PROCESS_S
            + cold_train_graph_s(layers)
            + cold_eval_graph_s(layers)
            + 2 * step_s(size, c["batch"], c["seq"])
            + eval_s(size, c["batch"], c["seq"], c["eval_tokens"])
        )
        for bits in (16, 6):
            out.append((f"{size} bits {bits}", step_memory_estimate(size, c["batch"], c["seq"], bits), seconds))
    return out


def section_costs(plan: dict) -> dict[str, tuple[float, str]]:
    """Modelled seconds of every section of a GPU plan, each with how it adds up."""
    out = {"device": (PROCESS_S + 5.0, "process, nvidia-smi, Triton's libcuda lookup")}

    c = plan["precompile"]
    tasks = precompile_tasks(c)
    waves = schedule(tasks, GPU_BYTES * MEMORY_SHARE)
    out["precompile"] = (
        PROCESS_S + makespan(tasks, GPU_BYTES * MEMORY_SHARE),
        f"{len(tasks)} shapes, each a fresh process (cold train + eval graph), started as memory allows: "
        + " | ".join(", ".join(w) for w in waves),
    )

    c = plan["pipeline"]
    runs, concurrent = 4, max(1, c["cores"])  # each training job takes one core
    job = PROCESS_S + 2 * WARM_GRAPH_S + c["steps"] * step_s(c["size"], c["batch"], c["seq"]) * min(runs, concurrent)
    waves_n = math.ceil(runs / concurrent)
    out["pipeline"] = (
        PIPELINE_FIXED_S + waves_n * job,
        f"{PIPELINE_FIXED_S:.0f} s Snakemake, data and tables + {waves_n} wave(s) of {min(runs, concurrent)} "
        f"time-sliced jobs of {c['steps']} steps",
    )

    c = plan["correctness"]
    fast = c["steps"] * step_s(c["size"], c["batch"], c["seq"])
    ref = c["steps"] * step_s(c["size"], c["batch"], c["seq"], fp32=True)
    grads = step_s(c["size"], c["batch"], c["seq"]) * (1 + 2 * EAGER_OVER_COMPILED) + step_s(
        c["size"], c["batch"], c["seq"], fp32=True
    )
    per_bits = 2 * WARM_GRAPH_S + fast + ref + grads + WARM_GRAPH_S  # + the compiled quantiser
    out["correctness"] = (
        PROCESS_S + len(c["bits"]) * per_bits,
        f"{len(c['bits'])} bit-widths × ({c['steps']} fast steps {fast:.1f} s + {c['steps']} fp32 steps "
        f"{ref:.1f} s + gradient check + graph loads)",
    )

    c = plan["packing"]
    one = step_s(c["size"], c["batch"], c["seq"])
    out["packing"] = (
        sum(PROCESS_S + WARM_GRAPH_S + (3 + c["steps"]) * one * k for k in c["k"]),
        f"K = {', '.join(map(str, c['k']))}: processes side by side, the GPU time-sliced between them",
    )

    c = plan["compile"]
    total, parts = 0.0, []
    for size in c["sizes"]:
        layers, b, t = n_layer_of(size), c["batch"], c["seq"]
        work = c["steps"] * step_s(size, b, t) + 3 * eval_s(size, b, t, c["eval_tokens"])
        cold = PROCESS_S + cold_train_graph_s(layers) + cold_eval_graph_s(layers) + work
        warm = PROCESS_S + 2 * WARM_GRAPH_S + work
        total += cold + warm
        parts.append(f"{size} cold {cold:.0f} s + warm {warm:.0f} s")
    out["compile"] = (total, "; ".join(parts))

    c = plan["speed"]
    for size in c["box_s"]:
        one, n = step_s(size, c["batch"], c["seq"]), c["warmup"] + c["steps"]
        out[f"speed:{size}"] = (
            PROCESS_S + 2 * WARM_GRAPH_S + n * 2 * one,
            f"FP16 and INT6 graphs loaded, {n} steps each at {one * 1e3:.0f} ms",
        )
    c = plan.get("memory")
    if c is not None:
        # eager (the memory model counts eager's saved tensors), the optimiser state made at step 1
        one = step_s(c["size"], c["batch"], c["seq"]) * EAGER_OVER_COMPILED
        build = 10.0  # the model initialised on the host, then moved: ~1.4 GB of fp32 weights at 350M
        out["memory"] = (
            PROCESS_S + build + 2 * one,
            f"{c['size']} built ({build:.0f} s), 2 eager steps at {one:.1f} s in its plan's micro-batches",
        )
    return out


def boxes(plan: dict) -> dict[str, float]:
    """Each section's time box: its modelled cost × MARGIN, rounded up to 5 s."""
    return {name: 5 * math.ceil(cost * MARGIN / 5) for name, (cost, _) in section_costs(plan).items()}


def with_boxes(plan: dict) -> dict:
    """The plan with every modelled section's box from the model and the budget the sum of all
    boxes (a section the model does not cover keeps the box its plan gives)."""
    b = boxes(plan)
    for name in ("device", "precompile", "pipeline", "correctness", "packing", "compile", "memory"):
        if name in plan:
            plan[name]["box_s"] = b[name]
    plan["speed"]["box_s"] = {size: b[f"speed:{size}"] for size in plan["speed"]["box_s"]}
    others = [v["box_s"] for k, v in plan.items() if k not in {*b, "speed"} and isinstance(v, dict) and "box_s" in v]
    plan["budget_s"] = sum(b.values()) + sum(others)
    return plan


def cost_lines(plan: dict) -> list[str]:
    """The model as gpu_check.py prints it at its start."""
    costs, b = section_costs(plan), boxes(plan)
    lines = [
        f"cost model (benchmarks/gpu_costs.py): steps at {PEAK_BF16 / 1e12:.0f} TFLOP/s bf16 × assumed MFU "
        f"{', '.join(f'{k} {v:.0%}' for k, v in MFU.items())}; fp32 reference at {PEAK_FP32 / 1e12:.0f} TFLOP/s × "
        f"{MFU_FP32:.0%}; a process {PROCESS_S:.0f} s, a warm graph {WARM_GRAPH_S:.0f} s; boxes = cost × {MARGIN}"
    ]
    for name, (cost, how) in costs.items():
        lines.append(f"  {name:<12} {cost:6.0f} s modelled, box {b[name]:4.0f} s: {how}")
    lines.append(f"  {'total':<12} {sum(c for c, _ in costs.values()):6.0f} s modelled, budget {sum(b.values()):.0f} s")
    return lines
