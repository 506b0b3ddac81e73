"""Train the grid's runs: QAT (or FP16) from initialisation or from a shared trunk, resumable.

Read top to bottom as the baseline's main loop: build (device, data, model, optimisers),
resume, loop (schedule, batch, step, log and evaluate, checkpoint), record.

The executor, `run_job`, runs one training job of the plan (qatgrid.plan.Job, whatever the
layout: one run alone, one trunk segment, or a whole group): its tasks in order, each through
the same three steps. `train_task`: build, resume (the task's own state folder, else the trunk
state it continues, else initialisation), the loop under one progress record and stop-signal
set-up. `finish`: a segment saves its state at the branch step; a run writes its outputs, the
probe, keeps the weight files outputs.weights says (qatgrid.storage.retain_weights); then the
task's resumable state is cleared. The task's kind (segment | member | run) says which.

Outputs of a run (written only when it ends, each atomically; paths from qatgrid.runfiles):
    metrics.json, probe.json, ckpt_prewarmdown.pt, ckpt_final.pt (fp32, then as outputs.weights
    keeps them); in a group's job metrics and probe are staged for the run's own job to move.
Progress (log lines, curve.jsonl as training goes, TensorBoard events): qatgrid.progress.
Resumable state (qatgrid.checkpoint) lives in the task's state folder, which Snakemake does not
delete when a job fails: written every `checkpoint_every` steps and when SIGTERM/SIGUSR1/SIGUSR2
arrives.

Batches are a pure function of the step (qatgrid.data.stream), so resuming or branching needs
only model, optimiser and bookkeeping state, and a resumed CPU run is bitwise identical to an
uninterrupted one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import math
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from .checkpoint import (
    clear_state,
    load_checkpoint,
    load_state,
    model_state,
    save_checkpoint,
    save_state,
    save_weights,
    sidecar,
)
from .config import RunPlan, TrainConfig
from .data import load_data
from .data.bpb import bits_per_byte
from .data.stream import train_batch
from .io import read_json, write_json
from .model import GPT, ModelConfig, count_params
from .optim import build_optimizers, ns_precision, set_step
from .plan import Job, Task
from .probe import probe_checkpoint
from .progress import Progress
from .runfiles import GroupFiles, RunFiles, TrunkFiles
from .runs import Run
from .runtime import autocast, device_name, fast_path, resolve_device, setup_device, use_compile_cache
from .schedule import lr_multiplier, total_steps
from .storage import check_fits, param_layout, retain_weights, state_bytes
from .trunks import group_key, training_code_fingerprint, trunk_name

METRICS_SCHEMA_VERSION = 1
CHECKPOINT_SIGNALS = (signal.SIGTERM, signal.SIGUSR1, signal.SIGUSR2)
log = logging.getLogger("qatgrid.train")


class Interrupted(RuntimeError):
    """Raised after a checkpoint was saved because the scheduler asked us to stop."""


# ---------------------------------------------------------------------------------------------
# The pieces: model and optimisers, one step, batches, evaluation


def build_trainer(
    mcfg: ModelConfig,
    device: torch.device,
    compiled: bool,
    optimizer: str,
    lr: dict,
    lr_mult: float,
    weight_decay: float,
    compile_cache: str | None = None,
) -> tuple[GPT, torch.nn.Module, list[torch.Tensor], list]:
    """The model, the forward to train with (compiled or not; it shares the model's parameters),
    the parameter list and the optimisers: everything train_step needs. The caller seeds."""
    model = GPT(mcfg).to(device)
    optimizers = build_optimizers(model, optimizer, lr, lr_mult, weight_decay)
    if compiled:
        use_compile_cache(compile_cache)
    forward = torch.compile(model) if compiled else model
    return model, forward, list(model.parameters()), optimizers


def train_step(
    forward,
    params: list[torch.Tensor],
    optimizers: list,
    x: torch.Tensor,
    y: torch.Tensor,
    amp_dtype: torch.dtype | None,
    grad_clip: float,
    micro_batches: int = 1,
) -> torch.Tensor:
    """One optimiser step. Returns the loss tensor unread: reading it (.item()) would make the
    host wait for the GPU, so the loop reads it only at log intervals.

    With `micro_batches` k > 1 the batch's rows go through the model k at a time, as the
    baseline's gradient accumulation: each micro-batch's mean loss / k is backpropagated, the
    gradients add up to the whole batch's (equal micro-batches: the mean of means is the mean),
    and clipping and the optimiser step see them once. k = 1 is the one-pass step, unchanged."""
    if micro_batches > 1:
        return accumulate(forward, params, optimizers, x, y, amp_dtype, grad_clip, micro_batches)
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


def accumulate(forward, params, optimizers, x, y, amp_dtype, grad_clip: float, k: int) -> torch.Tensor:
    """train_step over k micro-batches of the batch's rows: the gradients of their losses / k add up."""
    if x.size(0) % k:
        raise ValueError(f"train.micro_batches: {k} micro-batches do not divide the batch of {x.size(0)} sequences")
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    total = torch.zeros((), device=x.device)
    for xs, ys in zip(x.chunk(k), y.chunk(k)):
        with autocast(x.device, amp_dtype):
            loss = forward(xs, ys) / k
        loss.backward()
        total += loss.detach()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    for opt in optimizers:
        opt.step()
    return total


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


# ---------------------------------------------------------------------------------------------
# One run: what it trains with, and where it stands


@dataclass
class Training:
    """A run being trained: its settings, data, model and optimisers, and where it stands
    (step, curve, elapsed seconds, the pre-warmdown weights once taken, divergence)."""

    run: Run
    kind: str  # the task's (qatgrid.plan.Task): segment | member | run
    tc: TrainConfig
    plan: RunPlan
    files: RunFiles | TrunkFiles
    device: torch.device
    amp_dtype: torch.dtype | None
    compiled: bool
    mcfg: ModelConfig
    model: GPT
    forward: torch.nn.Module
    params: list
    optimizers: list
    train_tokens: np.ndarray
    val_tokens: np.ndarray
    evaluated: dict  # {tokens, bytes} of the validation targets evaluation scores
    step: int = 0
    curve: list = field(default_factory=list)  # {step, train_loss[, val_loss]} per logged step
    records: list = field(default_factory=list)  # the curve file's records (a branch adopts its trunk's)
    elapsed: float = 0.0
    prewarmdown: dict | None = None
    diverged: bool = False
    trunk: str | None = None  # the shared trunk this run branched off, if any
    trunk_seconds: float = 0.0  # of `elapsed`, the part that trunk trained (counted once, in the trunk)
    spec: dict | None = None  # what a shared trunk's state must match to be reused (trunks only)

    @property
    def name(self) -> str:
        """What log lines call it: the run, or the trunk segment that ends at the run's branch step."""
        return f"trunk segment of {self.run.id}" if self.kind == "segment" else self.run.id

    def state(self) -> dict:
        return {
            "model": model_state(self.model),
            "optimizers": [o.state_dict() for o in self.optimizers],
            "step": self.step,
            "curve": self.curve,
            "records": self.records,
            "elapsed": self.elapsed,
            "prewarmdown": self.prewarmdown,
            "diverged": self.diverged,
            "trunk": self.trunk,
            "trunk_seconds": self.trunk_seconds,
            "spec": self.spec,
        }

    def restore(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        for opt, opt_state in zip(self.optimizers, state["optimizers"]):
            opt.load_state_dict(opt_state)
        self.step, self.curve, self.elapsed = state["step"], state["curve"], state["elapsed"]
        self.records, self.prewarmdown = state.get("records", []), state.get("prewarmdown")
        self.diverged = state.get("diverged", False)
        self.trunk, self.trunk_seconds = state.get("trunk"), state.get("trunk_seconds", 0.0)


def build(task: Task, tc: TrainConfig, data_dir: str, files: RunFiles | TrunkFiles, threads: int) -> Training:
    """Device, data, then the model from the run's seed and its optimisers."""
    run = task.run
    device = resolve_device(tc.device)
    setup_device(device, threads)
    amp_dtype, compiled = fast_path(device, tc.precision, tc.compile)
    meta, train_tokens, val_tokens, val_bytes = load_data(data_dir)
    if tc.vocab_size is None:  # a config without its data section: the memory model takes the data's
        tc = dataclasses.replace(tc, vocab_size=meta["vocab_size"])
    plan = tc.plan(run)
    torch.manual_seed(run.seed)
    mcfg = ModelConfig.from_size(
        run.size, vocab_size=meta["vocab_size"], seq_len=tc.seq_len, bits=run.bits, logit_softcap=tc.logit_softcap
    )
    model, forward, params, optimizers = build_trainer(
        mcfg, device, compiled, run.optimizer, tc.lr, plan.lr_mult, tc.weight_decay, tc.compile_cache
    )
    # Bits per byte over exactly the targets `evaluate` scores: positions 1..n of the validation tokens.
    n_eval = eval_windows(len(val_tokens), tc.seq_len, tc.eval_tokens) * tc.seq_len
    evaluated = {"tokens": n_eval, "bytes": int(val_bytes[1 : n_eval + 1].sum(dtype=np.int64))}
    return Training(
        run=run, kind=task.kind, tc=tc, plan=plan, files=files, device=device, amp_dtype=amp_dtype,
        compiled=compiled, mcfg=mcfg, model=model, forward=forward, params=params, optimizers=optimizers,
        train_tokens=train_tokens, val_tokens=val_tokens, evaluated=evaluated,
    )  # fmt: skip


@contextlib.contextmanager
def stop_signals():
    """Collect SIGTERM/SIGUSR1/SIGUSR2 (a scheduler's warning) instead of dying on them."""
    requested: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: requested.append(signum)) for s in CHECKPOINT_SIGNALS}
    try:
        yield requested
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def log_step(t: Training, loss: torch.Tensor, progress: Progress) -> None:
    """Read the loss (and evaluate, at eval points) into the curve; flag divergence."""
    tc, steps = t.tc, t.plan.steps
    train_loss = loss.item()
    entry = {"step": t.step, "train_loss": train_loss}
    if t.step % tc.eval_every == 0 or t.step == steps:
        entry["val_loss"] = evaluate(
            t.forward, t.val_tokens, tc.seq_len, t.plan.batch_size, tc.eval_tokens, t.device, t.amp_dtype
        )
    t.curve.append(entry)
    t.records.append(progress.log(entry))
    if not math.isfinite(train_loss) or train_loss > tc.diverge_loss:
        t.diverged = True
        log.warning("%s diverged at step %d (train loss %s > %s)", t.run.id, t.step, train_loss, tc.diverge_loss)


def train_until(t: Training, stop_step: int, progress: Progress, stop_requested: list) -> None:
    """The loop, from t.step up to `stop_step` (or divergence). Checkpoints every
    `checkpoint_every` steps and, on a stop signal, checkpoints and raises Interrupted."""
    tc, plan, run = t.tc, t.plan, t.run
    t0 = time.perf_counter()

    def checkpoint() -> None:
        nonlocal t0
        now = time.perf_counter()
        t.elapsed += now - t0
        t0 = now
        save_state(t.files.state_dir, t.state())

    while t.step < stop_step:
        if t.step == plan.warmdown_start and t.prewarmdown is None:
            t.prewarmdown = model_state(t.model)
        lr_mult = lr_multiplier(t.step, plan.steps, tc.warmup_steps, run.warmdown_frac, run.schedule)
        set_step(t.optimizers, lr_mult, t.step, tc.muon_momentum)
        x, y = train_batch(t.train_tokens, tc.train_section, run, t.step, plan.batch_size, tc.seq_len, t.device)
        loss = train_step(t.forward, t.params, t.optimizers, x, y, t.amp_dtype, tc.grad_clip, plan.micro_batches)
        t.step += 1
        if t.step % tc.log_every == 0 or t.step == plan.steps:
            log_step(t, loss, progress)
            if t.diverged:
                break
        if t.step % tc.checkpoint_every == 0 and t.step < plan.steps:
            checkpoint()
        if stop_requested:
            checkpoint()
            message = f"{t.name}: stopped by signal {stop_requested[0]} at step {t.step}; checkpoint saved"
            log.warning(message)
            raise Interrupted(message)
    t.elapsed += time.perf_counter() - t0


SCHEDULER_ENV = {
    "slurm_job_id": "SLURM_JOB_ID",
    "slurm_array_job_id": "SLURM_ARRAY_JOB_ID",
    "slurm_array_task_id": "SLURM_ARRAY_TASK_ID",
    "cuda_visible_devices": "CUDA_VISIBLE_DEVICES",
    "hostname": "SLURMD_NODENAME",
}


def metrics_record(t: Training) -> dict:
    """metrics.json: the run, its outcome, its curve and where it ran (schema: config/README.md)."""
    run, tc, plan = t.run, t.tc, t.plan
    # JSON has no NaN: a diverged run reports null losses and diverged=true.
    final_val = None if t.diverged else t.curve[-1]["val_loss"]
    bpb = None if t.diverged else bits_per_byte(final_val, t.evaluated["tokens"], t.evaluated["bytes"])
    return {
        "schema_version": METRICS_SCHEMA_VERSION,
        "run_id": run.id,
        **run.as_dict(),
        "n_params": count_params(t.model),
        "n_layer": t.mcfg.n_layer,
        "d_model": t.mcfg.d_model,
        "steps": plan.steps,
        "steps_done": t.step,
        "warmdown_start": plan.warmdown_start,
        "tokens": t.step * plan.batch_size * tc.seq_len,
        "lr": tc.lr["adamw" if run.optimizer == "adamw" else "muon"] * plan.lr_mult,
        "batch_size": plan.batch_size,
        "data_seed": plan.data_seed,
        "batches": tc.batches,
        "stream_spans": tc.stream_spans,
        "micro_batches": plan.micro_batches,
        "hold_tokens": tc.hold_tokens,
        "lr_batch_rule": tc.lr_batch_rule,
        "final_val_loss": final_val,
        "final_val_bpb": bpb,
        "diverged": t.diverged,
        "curve": t.curve,
        "wall_seconds": t.elapsed,
        # A branched run's wall_seconds include the shared trunk's up to its branch step (what it
        # would have taken alone); trunk_seconds says how much, so GPU-hours count a trunk once.
        "trunk": t.trunk,
        "trunk_seconds": t.trunk_seconds,
        "device": str(t.device),
        "device_name": device_name(t.device),
        "torch_version": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": str(t.amp_dtype or torch.float32).removeprefix("torch."),
        "compiled": t.compiled,
        "muon_ns_precision": ns_precision(t.optimizers),
        # Where the run executed: lets the audit and the cluster test tell which scheduler job
        # (and GPU allocation) trained it. Empty outside SLURM.
        "scheduler": {key: os.environ[var] for key, var in SCHEDULER_ENV.items() if var in os.environ},
    }


def record(t: Training) -> dict:
    """Write the run's outputs: both checkpoints, then metrics.json last (its presence means done)."""
    metrics = metrics_record(t)
    info = {"run_id": t.run.id, "bits": t.run.bits, "size": t.run.size, "n_layer": t.mcfg.n_layer,
            "d_model": t.mcfg.d_model}  # fmt: skip
    # A diverged run stops before warmdown may begin; its probe input is then the last state.
    final = model_state(t.model)
    save_weights(t.files.ckpt_prewarmdown, t.prewarmdown if t.prewarmdown is not None else final, info)
    save_weights(t.files.ckpt_final, final, info)
    write_json(t.files.metrics, metrics)
    return metrics


def check_state_fits(t: Training) -> None:
    """Before training: stop with qatgrid.storage.DiskFull if the first checkpoint would not fit
    (each later one checks its real size as it is saved: qatgrid.checkpoint.save_checkpoint)."""
    layout = param_layout(t.mcfg.n_layer, t.mcfg.d_model, t.mcfg.vocab_size)
    check_fits(t.files.state, state_bytes(layout, t.run.optimizer))


# ---------------------------------------------------------------------------------------------
# Shared trunks (qatgrid.trunks): a segment trains a group's stable phase up to one member's
# branch step and saves the whole training state there; a member starts from such a state.


def trunk_spec(run: Run, tc: TrainConfig, data_dir: str) -> dict:
    """What a trunk state must have been made with to be reused: the group, the training
    settings, the data folder and the training code. Anything else retrains the trunk part."""
    return {
        "group": group_key(run).as_dict(),
        "train": tc.train_section,
        "data": Path(data_dir).name,
        "code": training_code_fingerprint(),
    }


def load_branch_state(path: Path, spec: dict) -> dict | None:
    """A trunk's state if it is there, intact and made for this group; else None, saying why
    (the caller then trains the trunk part itself, from initialisation)."""
    path = Path(path)
    if not path.exists():
        log.warning("trunk state %s is missing; retraining the trunk part from step 0", path)
        return None
    state = load_checkpoint(path)
    if state is None:
        log.warning("trunk state %s fails its checksum; retraining the trunk part from step 0", path)
        return None
    if state.get("spec") != spec:
        log.warning(
            "trunk state %s was made for another group, configuration or code version; retraining the trunk "
            "part from step 0", path,
        )  # fmt: skip
        return None
    return state


# ---------------------------------------------------------------------------------------------
# The executor: a job of the plan (qatgrid.plan), its tasks in order, whatever the layout


def resume(t: Training, start: Path | None, spec: dict) -> None:
    """Where a task starts: its own state folder if that holds a checkpoint (an interrupted
    attempt), else the trunk state `start` (its start run's state at its start step), else
    initialisation. A segment's own state must have been made for this group and setup too."""
    state = load_state(t.files.state_dir)
    if state is not None and t.kind == "segment" and state.get("spec") != spec:
        log.warning("%s was saved for another group, configuration or code version; ignoring it", t.files.state_dir)
        state = None
    if state is not None:
        t.restore(state)
        log.info("resumed %s from step %d", t.name, t.step)
    elif start is not None:
        state = load_branch_state(start, spec)
        if state is not None and t.kind == "segment":
            t.restore(state)
        elif state is not None:  # a branch: the trunk's time is counted once, in the trunk
            t.restore({**state, "trunk": trunk_name(t.run), "trunk_seconds": state["elapsed"], "spec": None})
            log.info("%s branches off its trunk at step %d (%s)", t.run.id, t.step, start)


def train_task(
    task: Task, tc: TrainConfig, data_dir: str, files: RunFiles | TrunkFiles, threads: int = 1,
    start: Path | None = None,
) -> Training:  # fmt: skip
    """Train one task up to its end step: build, resume (from `start`, the state it continues,
    if its own state folder holds none), then the loop with its progress record and stop signals."""
    t = build(task, tc, data_dir, files, threads)
    spec = trunk_spec(task.run, tc, data_dir)
    end = t.plan.warmdown_start if task.kind == "segment" else t.plan.steps
    if task.end_step != end:
        raise ValueError(f"{t.name}: planned to end at step {task.end_step}, but the run's config ends it at {end}")
    if task.kind == "segment":
        t.spec = spec  # saved with its states, so that no other group or setup reuses them
    resume(t, start, spec)
    if task.kind == "segment":
        log.info("trunk %s: segment from step %d to %d (%s's branch step)", trunk_name(t.run), t.step, end, t.run.id)
        if t.diverged:
            log.warning("trunk %s diverged at step %d, before step %d: its members from here on are diverged",
                        trunk_name(t.run), t.step, end)  # fmt: skip
            return t
    check_state_fits(t)
    progress = Progress(t.run.id, files, t.plan.steps, t.plan.batch_size * tc.seq_len, t.evaluated, t.step, t.elapsed,
                        tc.tensorboard and task.kind != "segment")  # fmt: skip
    try:
        if task.kind != "segment":
            progress.adopt(t.records)  # a branch's curve: the trunk's part, then its own
        if not t.diverged:  # a trunk that diverged before this run's branch step ends it there
            with stop_signals() as stop_requested:
                train_until(t, end, progress, stop_requested)
    finally:
        progress.close()
    return t


def finish(t: Training, outputs: dict | None) -> None:
    """After a task's training, its outputs, then its resumable state cleared. A segment saves
    its state at the branch step (where its members and the next segment start). A run writes
    its weights and metrics (record), then the probe of its pre-warmdown weights (here rather
    than in a job of its own: one process start less per run, for milliseconds of work), then
    keeps the weight files `outputs` (the config's outputs section) says (qatgrid.storage)."""
    if t.kind == "segment":
        save_checkpoint(t.files.branch_state, t.state())
    else:
        record(t)
        write_json(t.files.probe, probe_checkpoint(t.files.ckpt_prewarmdown))
        retain_weights(t.files, {"outputs": outputs or {}})
    clear_state(t.files.state_dir)


def task_files(task: Task, results: Path, group: GroupFiles | None) -> RunFiles | TrunkFiles:
    """Where a task writes: a segment its trunk files; a run its own, its declared outputs
    staged when a group's job trains it."""
    if task.kind == "segment":
        return TrunkFiles(task.run.id, results)
    return group.member(task.run.id) if group is not None else RunFiles(task.run.id, results)


def staged(group: GroupFiles, task: Task) -> bool:
    """Whether an earlier attempt of this group's job finished the run: its outputs are staged."""
    return all(Path(p).exists() for p in group.member(task.run.id).outputs().values())


def stage(group: GroupFiles, spec: dict) -> None:
    """Before a group's job trains: outputs an earlier attempt staged count as finished only if
    made with the same settings, data and code (a job rerun for a changed parameter, or outputs
    left over from a run whose own job never moved them, must not pass stale ones on)."""
    if group.spec.exists() and read_json(group.spec) == spec:
        return
    for path in group.spec.parent.glob("**/*.json"):
        path.unlink()
    write_json(group.spec, spec)


def run_job(
    job: Job, cfg: dict | TrainConfig, data_dir: str, results: str | Path = "results", threads: int = 1,
    outputs: dict | None = None,
) -> list[str]:  # fmt: skip
    """Run one training job of the plan: its tasks in order, each trained (train_task) from the
    trunk state it continues and finished (finish); `outputs`, the config's outputs section.
    Returns the ids of the runs trained.

    A group's job (rule train_group) stages its runs' declared outputs for their own jobs to
    move in place. Rerun after it was interrupted, it keeps the runs whose outputs it had staged
    (with the same settings, data and code: stage) and trains the trunk only as far as the runs
    still to train need it. Outputs already in place count for nothing: Snakemake reruns the
    job when they are stale (another parameter, other code), and then each run's job needs
    fresh ones to move."""
    tc = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_config(cfg)
    results = Path(results)
    group = GroupFiles(job.name, results) if job.rule == "train_group" else None
    if group is not None:
        stage(group, trunk_spec(job.tasks[0].run, tc, data_dir))
    runs = [task for task in job.tasks if task.kind != "segment"]
    todo = [task for task in runs if group is None or not staged(group, task)]
    needed_until = max((task.start_step for task in todo), default=0)
    for task in job.tasks:
        files = task_files(task, results, group)
        if task.kind == "segment" and group is not None:
            if task.end_step > needed_until or files.branch_state.exists():
                continue  # no run still to train starts from it, or an earlier attempt saved it
        elif task.kind != "segment" and task not in todo:
            continue
        start = TrunkFiles(task.start, results).branch_state if task.start is not None else None
        finish(train_task(task, tc, data_dir, files, threads, start), outputs)
    if group is not None:  # every run is trained: the branch states are no longer needed
        for task in job.tasks:
            state = TrunkFiles(task.run.id, results).branch_state
            for path in (state, sidecar(state)):
                path.unlink(missing_ok=True)
        write_json(group.done, {"trunk": group.trunk, "members": [t.run.id for t in runs],
                                "trained": [t.run.id for t in todo]})  # fmt: skip
    return [task.run.id for task in todo]


def train_run(
    run: Run, cfg: dict | TrainConfig, data_dir: str, files: RunFiles, threads: int = 1, branch: Path | None = None
) -> dict:
    """One run trained to its end and recorded (metrics and weights; no probe, its weights and
    state kept) from initialisation or, with `branch`, from that trunk state: the executor's
    training of one run, as the tests and benchmarks compare and time it. Returns its metrics."""
    tc = cfg if isinstance(cfg, TrainConfig) else TrainConfig.from_config(cfg)
    steps = total_steps(tc.train_section, run)
    return record(train_task(Task("run", run, None, 0, steps), tc, data_dir, files, threads, branch))
