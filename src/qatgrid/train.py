"""Train one run of the grid: QAT (or FP16) from initialisation, resumable.

Outputs (written only when the run ends, each atomically):
    metrics.json, ckpt_prewarmdown.pt, ckpt_final.pt
Progress (log lines, curve.jsonl as training goes, TensorBoard events): qatgrid.progress.
Resumable state lives in a separate state folder (Snakemake deletes a failed
job's declared outputs, the state survives): last.pt plus its sha256, written
every `checkpoint_every` steps and when SIGTERM/SIGUSR1/SIGUSR2 arrives.

Batches are a pure function of (seed, step), so resuming needs only model,
optimiser and bookkeeping state, and a resumed CPU run is bitwise identical to
an uninterrupted one.
"""

from __future__ import annotations

import ctypes
import logging
import math
import os
import shutil
import signal
import time
from pathlib import Path

import numpy as np
import torch

from .data import load_data
from .data.bpb import bits_per_byte
from .data.stream import train_batch
from .grid import Run, lr_batch_factor, run_batch_size, run_data_seed, total_steps, train_option
from .io import atomic_path, sha256_file, write_json
from .model import GPT, ModelConfig, count_params
from .optim import build_optimizers, ns_precision, set_step
from .progress import Progress
from .schedule import lr_multiplier, warmdown_start

METRICS_SCHEMA_VERSION = 1
CHECKPOINT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
log = logging.getLogger("qatgrid.train")


class Interrupted(RuntimeError):
    """Raised after a checkpoint was saved because the scheduler asked us to stop."""


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fast_path(train_cfg: dict, device: torch.device) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, compile?) for this device. On CUDA the default is bf16 autocast
    and torch.compile of the model (quantiser included, so fake quantisation fuses into the
    kernels); on CPU it is float32 eager, so CPU results never depend on this switch."""
    on_gpu = device.type == "cuda"
    precision, compile_ = train_cfg.get("precision", "auto"), train_cfg.get("compile", "auto")
    dtype = torch.bfloat16 if precision == "bf16" or (precision == "auto" and on_gpu) else None
    return dtype, compile_ is True or (compile_ == "auto" and on_gpu)


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # mallopt(3)'s upper limit on 64-bit; buffers above it still get their own mmap
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks in the heap for reuse instead of handing them back to the kernel.

    By default glibc serves a large allocation (a CPU step's logits are 4 MiB) with a fresh mmap
    and unmaps it on free, and trims the heap's top as soon as it is free: every step then faults
    its activations in again as new zeroed pages. With two CPU-miniature runs side by side (as
    `snakemake --cores 2` runs them) a 100-step run took 370k-560k minor page faults and 1.3-1.4x the
    time it takes with this set (16k-22k faults; benchmarks/bench_allocator.py). Peak memory is
    unchanged: freed blocks are reused, not added. Returns whether it applied (glibc only)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (macOS, Windows)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def setup_device(device: torch.device, threads: int) -> None:
    """CPU: a fixed thread count (part of what makes CPU runs reproducible) and an allocator that
    keeps freed memory. CUDA: TF32 matmuls."""
    if device.type == "cpu":
        torch.set_num_threads(threads)
        keep_freed_memory()
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def use_compile_cache(cache_dir: str | Path | None) -> None:
    """Point Inductor's on-disk caches (FX graphs, AOTAutograd, autotuning, Triton kernels) at
    `cache_dir`, a folder every run of the grid shares, instead of the node-local /tmp default:
    then only the first run of each shape compiles from nothing. Inductor reads the variable
    whenever it resolves its cache folder (not at import), so setting it before the first
    compiled call is enough; its writes are atomic, so concurrent jobs may share the folder.
    None leaves Inductor's default."""
    if cache_dir:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cache_dir).resolve())


def build_trainer(
    mcfg: ModelConfig,
    device: torch.device,
    compiled: bool,
    optimizer: str,
    lr: dict,
    lr_mult: float,
    weight_decay: float,
    compile_cache: str | Path | None = None,
) -> tuple[GPT, torch.nn.Module, list[torch.Tensor], list]:
    """The model, the forward to train with (compiled or not; it shares the model's parameters),
    the parameter list and the optimisers: everything train_step needs. The caller seeds."""
    model = GPT(mcfg).to(device)
    optimizers = build_optimizers(model, optimizer, lr, lr_mult, weight_decay)
    if compiled:
        use_compile_cache(compile_cache)
    forward = torch.compile(model) if compiled else model
    return model, forward, list(model.parameters()), optimizers


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def train_step(
    forward,
    params: list[torch.Tensor],
    optimizers: list,
    x: torch.Tensor,
    y: torch.Tensor,
    amp_dtype: torch.dtype | None,
    grad_clip: float,
) -> torch.Tensor:
    """One optimiser step. Returns the loss tensor unread: reading it (.item()) would make the
    host wait for the GPU, so the loop reads it only at log intervals."""
    with autocast(x.device, amp_dtype):
        loss = forward(x, y)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    for opt in optimizers:
        opt.step()
    return loss


def get_batch(
    tokens: np.ndarray, seed: int, step: int, batch_size: int, seq_len: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random windows drawn from a generator keyed on (seed, step): stateless, so resumable."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(tokens) - seq_len - 1, (batch_size,), generator=g).numpy()
    window = torch.from_numpy(np.stack([tokens[s : s + seq_len + 1] for s in starts]).astype(np.int64))
    if device.type == "cuda":  # pinned host memory: the copy overlaps with the running step
        window = window.pin_memory()
    xy = window.to(device, non_blocking=True)
    return xy[:, :-1], xy[:, 1:]


def eval_windows(n_val: int, seq_len: int, max_tokens: int) -> int:
    """Windows of `seq_len` targets that evaluation scores from the start of the validation tokens."""
    return max(1, min(max_tokens, n_val - 1) // seq_len)


@torch.no_grad()
def evaluate(
    model: GPT,
    val_tokens: np.ndarray,
    seq_len: int,
    batch_size: int,
    max_tokens: int,
    device: torch.device,
    amp_dtype: torch.dtype | None = None,
) -> float:
    """Mean next-token loss (nats) over the first `max_tokens` validation tokens, in fixed windows."""
    model.eval()
    n_windows = eval_windows(len(val_tokens), seq_len, max_tokens)
    total, count = 0.0, 0
    for i in range(0, n_windows, batch_size):
        idx = range(i, min(i + batch_size, n_windows))
        window = np.stack([val_tokens[j * seq_len : (j + 1) * seq_len + 1] for j in idx]).astype(np.int64)
        xy = torch.from_numpy(window).to(device)
        with autocast(device, amp_dtype):
            loss = model(xy[:, :-1], xy[:, 1:])
        total += loss.item() * len(idx)
        count += len(idx)
    model.train()
    return total / count


def save_checkpoint(path: Path, payload: dict) -> None:
    """Atomic torch.save plus a sha256 sidecar used to detect truncated files."""
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)
    with atomic_path(path.with_suffix(path.suffix + ".sha256")) as tmp:
        tmp.write_text(sha256_file(path) + "\n")


def load_checkpoint(path: Path) -> dict | None:
    """The checkpoint if present and intact; None (and a warning) otherwise."""
    sidecar = path.with_suffix(path.suffix + ".sha256")
    if not path.exists():
        return None
    if not sidecar.exists() or sidecar.read_text().strip() != sha256_file(path):
        log.warning("checkpoint %s fails its checksum; ignoring it", path)
        return None
    return torch.load(path, map_location="cpu", weights_only=True)


def rotate(state_dir: Path) -> None:
    """Keep the previous checkpoint as prev.pt, so a corrupt last.pt still leaves one to resume from.

    prev.pt is a hard link (a copy where links are not supported) of last.pt, never a rename: at
    every instant one intact pair of checkpoint and checksum exists, whenever a kill lands. (Renaming
    the two files one after the other left a window with neither pair intact.)"""
    if not (state_dir / "last.pt").exists():
        return
    for name in ("prev.pt.sha256", "prev.pt"):
        (state_dir / name).unlink(missing_ok=True)
    for name in ("last.pt", "last.pt.sha256"):
        if (state_dir / name).exists():
            try:
                os.link(state_dir / name, state_dir / name.replace("last", "prev"))
            except OSError:
                shutil.copy2(state_dir / name, state_dir / name.replace("last", "prev"))


def load_state(state_dir: Path) -> dict | None:
    """The newest intact checkpoint of last.pt / prev.pt, saying when it falls back."""
    state = load_checkpoint(state_dir / "last.pt")
    if state is None and (state_dir / "last.pt").exists():
        state = load_checkpoint(state_dir / "prev.pt")
        if state is not None:
            log.warning("falling back to the previous checkpoint %s (step %d)", state_dir / "prev.pt", state["step"])
    elif state is None:
        state = load_checkpoint(state_dir / "prev.pt")
    return state


def model_state(model: GPT) -> dict:
    return {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}


SCHEDULER_ENV = {
    "slurm_job_id": "SLURM_JOB_ID",
    "slurm_array_job_id": "SLURM_ARRAY_JOB_ID",
    "slurm_array_task_id": "SLURM_ARRAY_TASK_ID",
    "cuda_visible_devices": "CUDA_VISIBLE_DEVICES",
    "hostname": "SLURMD_NODENAME",
}


def train_run(run: Run, cfg: dict, data_dir: str, out_dir: str, state_dir: str, threads: int = 1) -> dict:
    train_cfg = cfg["train"]
    out_dir, state_dir = Path(out_dir), Path(state_dir)
    state_dir.mkdir(parents=True, exist_ok=True)
    device = resolve_device(train_cfg["device"])
    setup_device(device, threads)
    amp_dtype, compiled = fast_path(train_cfg, device)
    meta, train_tokens, val_tokens, val_bytes = load_data(data_dir)

    steps = total_steps(train_cfg, run)
    wd_start = warmdown_start(steps, run.warmdown_frac)
    seq_len, batch_size = train_cfg["seq_len"], run_batch_size(train_cfg, run)
    lr_mult = run.lr_mult * lr_batch_factor(train_cfg, run)
    torch.manual_seed(run.seed)
    mcfg = ModelConfig.from_size(
        run.size,
        vocab_size=meta["vocab_size"],
        seq_len=seq_len,
        bits=run.bits,
        logit_softcap=train_cfg["logit_softcap"],
    )
    model, forward, params, optimizers = build_trainer(
        mcfg,
        device,
        compiled,
        run.optimizer,
        train_cfg["lr"],
        lr_mult,
        train_cfg["weight_decay"],
        cfg.get("compile_cache"),
    )

    state_path = state_dir / "last.pt"
    state = load_state(state_dir)
    step, curve, elapsed, diverged, prewarmdown = 0, [], 0.0, False, None
    if state is not None:
        model.load_state_dict(state["model"])
        for opt, opt_state in zip(optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        step, curve, elapsed = state["step"], state["curve"], state["elapsed"]
        prewarmdown = state.get("prewarmdown")
        log.info("resumed %s from step %d", run.id, step)
    # Bits per byte over exactly the targets `evaluate` scores: positions 1..n of the validation tokens.
    n_eval = eval_windows(len(val_tokens), seq_len, train_cfg["eval_tokens"]) * seq_len
    evaluated = {"tokens": n_eval, "bytes": int(val_bytes[1 : n_eval + 1].sum(dtype=np.int64))}
    progress = Progress(
        run.id,
        out_dir,
        steps,
        batch_size * seq_len,
        evaluated,
        step,
        elapsed,
        cfg.get("logging", {}).get("tensorboard", False),
    )

    def checkpoint() -> None:
        rotate(state_dir)
        save_checkpoint(
            state_path,
            {
                "model": model_state(model),
                "optimizers": [o.state_dict() for o in optimizers],
                "step": step,
                "curve": curve,
                "elapsed": elapsed,
                "prewarmdown": prewarmdown,
            },
        )

    stop_requested = []
    previous = {s: signal.signal(s, lambda signum, frame: stop_requested.append(signum)) for s in CHECKPOINT_SIGNALS}
    t0 = time.perf_counter()
    threshold = train_cfg["diverge_loss"]
    try:
        while step < steps:
            if step == wd_start and prewarmdown is None:
                prewarmdown = model_state(model)
            set_step(
                optimizers,
                lr_multiplier(step, steps, train_cfg["warmup_steps"], run.warmdown_frac, run.schedule),
                step,
                train_cfg["muon_momentum"],
            )
            x, y = train_batch(train_tokens, train_cfg, run, step, batch_size, seq_len, device)
            loss = train_step(forward, params, optimizers, x, y, amp_dtype, train_cfg["grad_clip"])
            step += 1
            if step % train_cfg["log_every"] == 0 or step == steps:
                train_loss = loss.item()
                entry = {"step": step, "train_loss": train_loss}
                if step % train_cfg["eval_every"] == 0 or step == steps:
                    entry["val_loss"] = evaluate(
                        forward, val_tokens, seq_len, batch_size, train_cfg["eval_tokens"], device, amp_dtype
                    )
                curve.append(entry)
                progress.log(entry)
                if not math.isfinite(train_loss) or train_loss > threshold:
                    diverged = True
                    log.warning("%s diverged at step %d (train loss %s > %s)", run.id, step, train_loss, threshold)
                    break
            if step % train_cfg["checkpoint_every"] == 0 and step < steps:
                elapsed += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint()
            if stop_requested:
                elapsed += time.perf_counter() - t0
                t0 = time.perf_counter()
                checkpoint()
                message = f"{run.id}: stopped by signal {stop_requested[0]} at step {step}; checkpoint saved"
                log.warning(message)
                raise Interrupted(message)
    finally:
        progress.close()
        for s, handler in previous.items():
            signal.signal(s, handler)
    elapsed += time.perf_counter() - t0

    # JSON has no NaN: a diverged run reports null losses and diverged=true.
    final_val = None if diverged else curve[-1]["val_loss"]
    bpb = None if diverged else bits_per_byte(final_val, evaluated["tokens"], evaluated["bytes"])
    metrics = {
        "schema_version": METRICS_SCHEMA_VERSION,
        "run_id": run.id,
        **run.as_dict(),
        "n_params": count_params(model),
        "n_layer": mcfg.n_layer,
        "d_model": mcfg.d_model,
        "steps": steps,
        "steps_done": step,
        "warmdown_start": wd_start,
        "tokens": step * batch_size * seq_len,
        "lr": train_cfg["lr"]["adamw" if run.optimizer == "adamw" else "muon"] * lr_mult,
        "batch_size": batch_size,
        "data_seed": run_data_seed(run),
        "hold_tokens": train_option(train_cfg, "hold_tokens"),
        "lr_batch_rule": train_option(train_cfg, "lr_batch_rule"),
        "final_val_loss": final_val,
        "final_val_bpb": bpb,
        "diverged": diverged,
        "curve": curve,
        "wall_seconds": elapsed,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": str(amp_dtype or torch.float32).removeprefix("torch."),
        "compiled": compiled,
        "muon_ns_precision": ns_precision(optimizers),
        # Where the run executed: lets the audit and the cluster test tell which scheduler job
        # (and GPU allocation) trained it. Empty outside SLURM.
        "scheduler": {key: os.environ[var] for key, var in SCHEDULER_ENV.items() if var in os.environ},
    }
    # A diverged run stops before warmdown may begin; its probe input is then the last state.
    save_checkpoint_plain(
        out_dir / "ckpt_prewarmdown.pt", prewarmdown if prewarmdown is not None else model_state(model), run, mcfg
    )
    save_checkpoint_plain(out_dir / "ckpt_final.pt", model_state(model), run, mcfg)
    write_json(out_dir / "metrics.json", metrics)
    return metrics


def save_checkpoint_plain(path: Path, weights: dict, run: Run, mcfg: ModelConfig) -> None:
    with atomic_path(path) as tmp:
        torch.save(
            {
                "model": weights,
                "run_id": run.id,
                "bits": run.bits,
                "size": run.size,
                "n_layer": mcfg.n_layer,
                "d_model": mcfg.d_model,
            },
            tmp,
        )


def clear_state(state_dir: str) -> None:
    """Drop resumable state once a run's outputs are in place."""
    for name in ("last.pt", "last.pt.sha256", "prev.pt", "prev.pt.sha256"):
        try:
            os.unlink(Path(state_dir) / name)
        except FileNotFoundError:
            pass
