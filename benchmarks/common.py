"""What the benchmark scripts share, so that no script imports another: where things are, the
machine's name and CPU flags, the default config's training settings, statistics and formats,
a fresh-process runner, training steps (throughput, packing), FLOPs and MFU, whole training jobs
(the run costs the audit reads) and the default pipeline's wall time.

Each script runs as `python benchmarks/<script>.py`, so this folder is on its path and
`from common import ...` finds this module. torch is imported inside the functions that need it:
importing this module stays cheap.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
BITS = [16, 8, 6, 4]
sys.path.insert(0, str(REPO / "src"))
from qatgrid.config import load_config  # noqa: E402

DEFAULT_TRAIN = load_config()["train"]  # the default's settings (schema defaults filled in)
LR = DEFAULT_TRAIN["lr"]
# Dense (not 2:4 sparse) bf16 tensor-core peaks (FLOP/s) from NVIDIA's datasheets, for MFU: the
# first key the device's name contains, so a variant comes before its family ("H100 PCIe" before
# "H100", "A100" before "A10"). H100 SXM and H200 SXM 989 (1,979 sparse), H100 NVL and H200 NVL 835
# (1,671 sparse), H100 PCIe 756 (1,513 sparse), A100 SXM and PCIe 312 (624 sparse), L40S 362, A10 125.
# torch names an H100 SXM "NVIDIA H100 80GB HBM3", a PCIe card "NVIDIA H100 PCIe".
BF16_PEAK = {
    "H100 PCIe": 756e12,
    "H100 NVL": 835e12,
    "H200 NVL": 835e12,
    "H100": 989e12,
    "H200": 989e12,
    "A100": 312e12,
    "L40S": 362e12,
    "A10": 125e12,
}
TARGETS = {
    "qat_overhead_gpu": 1.10,
    "qat_overhead_cpu": 1.25,
    "mfu_100M": 0.40,
    "mfu_50M": 0.30,
    "packing_k8": 4.0,
    "dry_run_s": 10.0,
    "pipeline_s": 600.0,
}
TARGET_WARM_OVER_COLD = 0.15  # first compiled step with a warm shared cache / with an empty one


# --- the machine -------------------------------------------------------------------------------


def machine_name() -> str:
    """One name per machine for every results file: the GPU's name, else the CPU's architecture and cores."""
    import torch

    if torch.cuda.is_available():
        name = torch.cuda.get_device_name(0)
    else:
        name = f"cpu-{platform.machine()}-{os.cpu_count()}core"
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    return set(line.split(":", 1)[-1].split())


def bf16_peak(device_name: str) -> float | None:
    """The datasheet's dense bf16 peak of a GPU by its name, None when unknown."""
    return next((v for k, v in BF16_PEAK.items() if k in device_name), None)


# --- statistics and formats --------------------------------------------------------------------


def quartiles(xs: list[float]) -> tuple[float, float, float]:
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    return float(q1), float(med), float(q3)


def fmt_q(q) -> str:
    return f"{q[1] * 1e3:.1f} ms [{q[0] * 1e3:.1f}–{q[2] * 1e3:.1f}]"


def timed(cmd: list[str], cwd: Path, repeats: int) -> list[float]:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=cwd, check=True, capture_output=True)
        out.append(time.perf_counter() - t0)
    return out


# --- fresh processes ---------------------------------------------------------------------------


def _in_child(queue, fn, kwargs):
    try:
        queue.put(("ok", fn(**kwargs)))
    except BaseException as e:  # the parent re-raises it: a child's failure must not leave it waiting
        queue.put(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


def isolated(fn, **kwargs):
    """Run fn in a fresh process: per-size peak RSS, and no compile cache shared across sizes.
    An exception in the child is raised here as a RuntimeError carrying its traceback."""
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_in_child, args=(queue, fn, kwargs))
    proc.start()
    status, result = queue.get()
    proc.join()
    if status == "error":
        raise RuntimeError(f"{fn.__name__} failed in its process:\n{result}")
    return result


# --- training steps ----------------------------------------------------------------------------


def trainer(size: str, bits: int, batch: int, seq: int, threads: int, fast: dict | None = None):
    """A step function for a fresh model of this size and bit-width, built and set up as
    qatgrid.train.train_run builds it; returns (step, sync, info). `fast` holds the train keys
    `precision` and `compile` (default: the device's default fast path)."""
    import torch

    from qatgrid.model import ModelConfig, count_params
    from qatgrid.runtime import fast_path, resolve_device, setup_device
    from qatgrid.train import build_trainer, evaluate, train_step

    device = resolve_device("auto")
    setup_device(device, threads)
    fast = fast or {}
    amp_dtype, compiled = fast_path(device, fast.get("precision", "auto"), fast.get("compile", "auto"))
    torch.manual_seed(0)
    mcfg = ModelConfig.from_size(size, vocab_size=1024, seq_len=seq, bits=bits, logit_softcap=30.0)
    model, forward, params, optimizers = build_trainer(mcfg, device, compiled, "muon", LR, 1.0, 0.0)
    # Inputs and targets as qatgrid.data.stream.train_batch makes them (the two halves of one
    # 2 x batch x seq tensor): a compiled step then has the graph (input strides included) of a
    # training job's step, and shares its entries in the compile cache.
    xy = torch.randint(0, 1024, (2, batch, seq)).to(device)
    x, y = xy[0], xy[1]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def step() -> None:
        train_step(forward, params, optimizers, x, y, amp_dtype, DEFAULT_TRAIN["grad_clip"])

    # Evaluation as a training job evaluates (the same forward, no_grad, eval mode): its own graph.
    def evaluate_on(val_tokens, max_tokens: int) -> float:
        return evaluate(forward, val_tokens, seq, batch, max_tokens, device, amp_dtype)

    step.evaluate = evaluate_on

    info = {
        "n_params": count_params(model),
        "device": str(device),
        "precision": str(amp_dtype or torch.float32),
        "compiled": compiled,
    }
    return step, sync, info


def step_times(
    size: str,
    batch: int,
    seq: int,
    warmup: int,
    steps: int,
    threads: int,
    bits: list[int] = BITS,
    fast: dict | None = None,
) -> list[dict]:
    """Step times of FP16 and each QAT bit-width at one size. The models take their steps
    round-robin, so machine noise and drift fall on all of them alike and the QAT/FP16 ratio
    compares like with like."""
    import torch

    trainers = {b: trainer(size, b, batch, seq, threads, fast) for b in bits}
    for step, sync, _ in trainers.values():
        for _ in range(warmup):
            step()
        sync()
    times = {b: [] for b in bits}
    for _ in range(steps):
        for b, (step, sync, _) in trainers.items():
            t0 = time.perf_counter()
            step()
            sync()
            times[b].append(time.perf_counter() - t0)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    out = []
    for b, (_, _, info) in trainers.items():
        r = {
            "size": size,
            "bits": b,
            **info,
            "batch": batch,
            "seq_len": seq,
            "step_s": quartiles(times[b]),
            "tokens_per_s": batch * seq / statistics.median(times[b]),
            "peak_rss_mb": rss,
        }
        if torch.cuda.is_available():
            r["gpu_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20
        out.append(r)
    return out


def _packed_worker(barrier, queue, size, batch, seq, steps, threads, fast):
    try:
        step, sync, _ = trainer(size, 6, batch, seq, threads, fast)
        for _ in range(3):
            step()
        sync()
        barrier.wait()
        # time.monotonic is one clock for every process of the machine (CLOCK_MONOTONIC on
        # Linux), so the runs' windows compare across processes.
        start = time.monotonic()
        for _ in range(steps):
            step()
        sync()
        queue.put(("ok", (start, time.monotonic(), batch * seq * steps)))
    except BaseException as e:
        barrier.abort()  # the others stop waiting for this one
        queue.put(("error", f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


def aggregate_rate(windows: list[tuple[float, float, int]]) -> float:
    """Tokens/s of runs side by side, each a (start, end, tokens) window: every token over the
    span from the first start to the last end. (Summing each run's rate over its own window
    overstates it whenever the windows do not coincide: a run that finishes early no longer
    shares the GPU, so the others then run faster.)"""
    start, end = min(w[0] for w in windows), max(w[1] for w in windows)
    return sum(w[2] for w in windows) / (end - start)


def packing_gain(
    size: str, k_values: list[int], batch: int, seq: int, steps: int, threads: int, fast: dict | None = None
) -> dict:
    """Aggregate tokens/s of K concurrent INT6 runs (separate processes, as a Snakemake job
    group runs them) over the tokens/s of one run alone (aggregate_rate)."""
    ctx = mp.get_context("spawn")
    rates = {}
    for k in k_values:
        barrier, queue = ctx.Barrier(k), ctx.Queue()
        procs = [
            ctx.Process(target=_packed_worker, args=(barrier, queue, size, batch, seq, steps, threads, fast))
            for _ in range(k)
        ]
        for p in procs:
            p.start()
        per_run = [queue.get() for _ in procs]
        for p in procs:
            p.join()
        errors = [r for status, r in per_run if status == "error"]
        if errors:  # the first cause, not the others' broken barrier
            cause = next((e for e in errors if not e.startswith("BrokenBarrierError")), errors[0])
            raise RuntimeError(f"a packed run failed (K={k}):\n{cause}")
        rates[k] = aggregate_rate([r for _, r in per_run])
    return {"size": size, "aggregate_tokens_per_s": rates, "gain": {k: rates[k] / rates[k_values[0]] for k in k_values}}


def flops_per_token(n_params: int, n_layer: int, d_model: int, seq: int) -> float:
    """Training FLOPs per token: 6N for the weights plus 12·L·d·T for attention scores and values."""
    return 6 * n_params + 12 * n_layer * d_model * seq


def mfu(tokens_per_s: float, n_params: int, size: str, seq: int, peak: float | None) -> float | None:
    """Model FLOPs utilisation against `peak` FLOP/s (None when the peak is unknown)."""
    from qatgrid.sizes import SIZES

    n_layer, d_model = SIZES[size]
    return tokens_per_s * flops_per_token(n_params, n_layer, d_model, seq) / peak if peak else None


def step_memory_estimate(size: str, batch: int, seq: int, bits: int = 6, vocab: int = 1024) -> float:
    """A training step's peak GPU memory (bytes) at this size and batch, compiled bf16 on CUDA, by
    the package's memory model (qatgrid.memory): for planning which shapes may share a GPU."""
    from qatgrid.memory import step_memory

    return step_memory(size, vocab, batch, seq, bits, "muon", "bf16-cuda").total


# --- whole training jobs: the run costs the audit reads ----------------------------------------

JOB_BITS = 6  # a QAT run: the fake quantiser is part of the compiled graph
JOB_CHILD = "import json, sys; from common import job; print(json.dumps(job(json.loads(sys.argv[1]))))"


def job(spec: dict) -> dict:
    """Child process: one training job with timers around the package's own functions."""
    import torch

    from qatgrid import train as T
    from qatgrid.runfiles import RunFiles
    from qatgrid.runs import Run
    from qatgrid.runtime import resolve_device

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    calls = {name: [] for name in ("train_step", "evaluate", "save_state", "save_weights", "write_json")}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.time()
            out = fn(*args, **kwargs)
            sync()  # a CUDA step returns before it is done
            calls[name].append((t0, time.time() - t0))
            return out

        return wrapper

    for name in calls:
        setattr(T, name, timed(name, getattr(T, name)))
    T.train_run(
        Run("bench", JOB_BITS, spec["size"], 0.5, 1.0, 0),
        {"train": spec["train"], "compile_cache": spec["cache"]},
        spec["data_dir"],
        RunFiles("bench", spec["out"]),
        threads=spec["train"]["threads"],
    )
    return {"calls": calls, "device": str(resolve_device(spec["train"]["device"])), "t_end": time.time()}


def run_job(spec: dict) -> dict:
    """One job in a fresh process; its costs split into per-call medians and the fixed rest."""
    t_launch = time.time()
    proc = subprocess.run(
        [sys.executable, "-c", JOB_CHILD, json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "src"), str(REPO / "benchmarks")])},
    )
    wall = time.time() - t_launch
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark job failed:\n{proc.stderr[-4000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    c, tr = res["calls"], spec["train"]
    steps = [d for _, d in c["train_step"]]
    step_s = statistics.median(steps[2:])  # steady state: after the compile and the first optimiser step
    evals = [d for _, d in c["evaluate"]]
    eval_s = statistics.median(evals[1:])  # the first evaluation compiles (or loads) its graph
    ckpt_s = statistics.median(d for _, d in c["save_state"])
    finals = c["save_weights"] + c["write_json"]
    variable = len(steps) * step_s + len(evals) * eval_s + len(c["save_state"]) * ckpt_s
    n_eval_tokens = min(tr["eval_tokens"], spec["val_tokens"] - 1) // tr["seq_len"] * tr["seq_len"]
    return {
        "wall_s": wall,
        "fixed_s": wall - variable,
        "startup_s": c["train_step"][0][0] - t_launch,  # process start to the first step
        "first_step_s": steps[0],
        "step_s": step_s,
        "tokens_per_s": tr["batch_size"] * tr["seq_len"] / step_s,
        "first_eval_s": evals[0],
        "eval_s": eval_s,
        "eval_tokens_per_s": n_eval_tokens / eval_s,
        "checkpoint_s": ckpt_s,
        "final_writes_s": sum(d for _, d in finals),
        "exit_s": t_launch + wall - res["t_end"],
        "device": res["device"],
    }


def median_of(jobs: list[dict]) -> dict:
    return {
        k: (statistics.median(j[k] for j in jobs) if isinstance(jobs[0][k], float) else jobs[0][k]) for k in jobs[0]
    }


def train_settings(config: Path, compile_: bool, steps: int) -> dict:
    """The config's training settings (merged over the default, as --configfile does), in a short
    job with a few evaluations and periodic checkpoints."""
    tr = load_config([] if config.resolve() == (REPO / "config" / "config.yaml").resolve() else [config])["train"]
    every = steps // 3
    return {
        **tr,
        "steps": steps,
        "warmup_steps": 1,
        "log_every": every,
        "eval_every": every,
        "checkpoint_every": every,
        "compile": compile_,
        "diverge_loss": 1e9,
    }


def size_costs(size: str, kinds: dict, repeats: int, tmp: Path, data_dir: str, val_tokens: int) -> dict:
    """The run costs of one size: per repeat, one job of each kind (name -> train settings) in a
    fresh process, in order; "cold" and "warm" share a compile cache that is empty before "cold".
    Returns the medians per kind and, with both, warm_over_cold (first compiled step)."""
    runs = {kind: [] for kind in kinds}
    for r in range(repeats):
        cache = str(tmp / f"cache-{size}-{r}")  # empty: this size has not compiled yet
        for kind, train in kinds.items():
            spec = {
                "size": size,
                "train": train,
                "cache": cache,
                "data_dir": data_dir,
                "out": str(tmp / f"job-{size}-{r}-{kind}"),
                "val_tokens": val_tokens,
            }
            runs[kind].append(run_job(spec))
            j = runs[kind][-1]
            print(
                f"{size:>6} {kind:>5} #{r}: first step {j['first_step_s']:.2f} s, "
                f"step {j['step_s'] * 1e3:.1f} ms, "
                f"fixed {j['fixed_s']:.2f} s, job {j['wall_s']:.1f} s",
                flush=True,
            )
    entry = {kind: median_of(js) for kind, js in runs.items()}
    if "cold" in entry and "warm" in entry:
        entry["warm_over_cold"] = entry["warm"]["first_step_s"] / entry["cold"]["first_step_s"]
    return entry


def write_run_cost(path: Path, sections: dict) -> None:
    """Set the "run_cost" section of a results file (benchmarks/results/<machine>.json), keeping the others."""
    results = json.loads(path.read_text()) if path.exists() else {}
    results["run_cost"] = sections
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")


def run_cost_markdown(s: dict) -> str:
    t = s["train"]
    lines = [
        f"# Compile cache and per-run overhead: {s['device']} (torch {s['torch']})",
        "",
        f"One training job per row kind and repeat, each in a fresh process: INT{s['bits']}, batch "
        f"{t['batch_size']} × {t['seq_len']} tokens, {s['steps_per_job']} steps with 3 evaluations of "
        f"≤ {t['eval_tokens']:,} tokens and 2 periodic checkpoints (settings of `{s['config']}`). "
        f"Medians over {s['repeats']} repeats.",
        "",
        f"## First compiled step: empty cache vs warm shared cache "
        f"(target: warm ≤ {s['target_warm_over_cold']:.0%} of cold)",
        "",
        "| size | cold first step | warm first step | warm / cold | met | steady step |",
        "|---|---|---|---|---|---|",
    ]
    for size, e in s["sizes"].items():
        if "warm_over_cold" not in e:
            continue
        lines.append(
            f"| {size} | {e['cold']['first_step_s']:.2f} s | {e['warm']['first_step_s']:.2f} s | "
            f"{e['warm_over_cold']:.1%} | {'yes' if e['warm_over_cold'] <= s['target_warm_over_cold'] else 'no'} | "
            f"{e['warm']['step_s'] * 1e3:.1f} ms |"
        )
    lines += [
        "",
        "## A whole training job: fixed per-run overhead beside the per-step time",
        "",
        "fixed = job wall time − steps, evaluations and periodic checkpoints at their steady per-call times.",
        "",
        "| size | job | wall | fixed | process start → first step | first step | step | first eval | eval | "
        "checkpoint | final writes | exit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, e in s["sizes"].items():
        for kind in ("cold", "warm", "eager"):
            if kind in e:
                j = e[kind]
                lines.append(
                    f"| {size} | {kind} | {j['wall_s']:.1f} s | {j['fixed_s']:.2f} s | {j['startup_s']:.2f} s | "
                    f"{j['first_step_s']:.2f} s | {j['step_s'] * 1e3:.1f} ms | {j['first_eval_s']:.2f} s | "
                    f"{j['eval_s'] * 1e3:.0f} ms | {j['checkpoint_s'] * 1e3:.1f} ms | "
                    f"{j['final_writes_s'] * 1e3:.1f} ms | {j['exit_s']:.2f} s |"
                )
    return "\n".join(lines) + "\n"


# --- the pipeline ------------------------------------------------------------------------------

WORKFLOW_ITEMS = ["Snakefile", "rules", "workflow", "config", "envs", "profiles", "src"]


def export(rev: str | None, dest: Path) -> str:
    """The workflow files of `rev` (the working tree when None) in dest; returns the commit described."""
    if rev is None:
        for item in WORKFLOW_ITEMS:
            src = REPO / item
            if src.exists():
                subprocess.run(["cp", "-r", str(src), str(dest / item)], check=True)
        return "working tree"
    archive = subprocess.run(["git", "archive", rev], cwd=REPO, check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=REPO, check=True, capture_output=True, text=True
    ).stdout.strip()


def run_pipeline(
    workdir: Path, env: dict, configfile: Path | None = None, targets: list[str] = (), cores: str = "all"
) -> dict:
    """One `snakemake --cores all` from scratch (or of `targets`); wall seconds, jobs run, and runs trained."""
    # The exported src/ comes first on the path: each revision runs its own package.
    env = {**os.environ, **env, "PYTHONPATH": str(workdir / "src")}
    cmd = [sys.executable, "-m", "snakemake", *targets, "--cores", cores]
    if configfile is not None:
        cmd += ["--configfile", str(configfile)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=workdir, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"pipeline failed in {workdir}:\n{proc.stderr[-3000:]}")
    jobs = re.findall(r"(\d+) of (\d+) steps \(100%\) done", proc.stderr)
    runs = len(list((workdir / "results" / "runs").rglob("metrics.json")))
    return {"wall_s": wall, "jobs": int(jobs[-1][1]) if jobs else None, "runs": runs}
