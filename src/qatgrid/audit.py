"""Audit a grid before (and while) it runs: counts, cost estimate, and what is done.

Nothing is trained or loaded: the grid comes from `expand_runs`, the status of
each run from the files under `results/` (STATUSES, the one vocabulary of the audit and
`qatgrid status`):
- done:        metrics.json present, not diverged
- diverged:    metrics.json present, diverged
- running:     only when asked (`qatgrid status`): no metrics, curve/log/checkpoint changed recently
- interrupted: no metrics, but a resumable checkpoint in results/state/ (stopped or failed
               after a checkpoint: a retry resumes from it)
- failed:      no metrics, no checkpoint, but a training log or curve (failed, or running right
               now when not asked about running)
- not started: nothing yet

The GPU-hour estimate of a run comes from measurements where they exist: the "run_cost"
section that benchmarks/bench_compile.py writes to benchmarks/results/<audit.device>.json
(per size: training and evaluation throughput, the time of a periodic checkpoint, and the
fixed cost of a job with a warm compile cache, or an empty one for the first run of a
compiled shape). A size without a measurement falls back to
`audit.tokens_per_second` (tokens / rate, no fixed costs); the report says which was used.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pandas as pd

from .config import TrainConfig
from .logs import error_line, tail_lines
from .memory import GIB, check_pack_memory, runs_per_gpu, step_memory, train_precision
from .plan import build_plan
from .runfiles import GroupFiles, RunFiles
from .runs import AXES, Run, bits_label, expand_runs
from .schedule import run_batch_size, run_data_seed, total_steps, total_tokens
from .sizes import size_to_number
from .trunks import group_jobs, trunk_name

# A run's state, in the audit, `qatgrid status` and the README alike (run_status).
STATUSES = ("done", "diverged", "running", "interrupted", "failed", "not started")
BENCH_DIR = "benchmarks/results"
CONFIG_RATES = "audit.tokens_per_second"


class AuditMismatch(ValueError):
    """The grid's run counts differ from the counts the config says the study has."""


def phase_group(phase: str) -> str:
    """'phase5-int4' -> 'phase5': sweeps of one published phase share a prefix."""
    return phase.split("-")[0]


def read_metrics(results: Path, run_id: str) -> dict | None:
    """A run's metrics, or None if absent or unreadable (a half-written file never crashes a status view)."""
    try:
        return json.loads(RunFiles(run_id, results).metrics.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None


def last_activity(files) -> float | None:
    """Newest mtime of what a job in flight keeps touching (a run's or a trunk segment's files:
    curve, log, state checkpoint); None when none exists."""
    times = [p.stat().st_mtime for p in files.activity() if p.exists()]
    return max(times) if times else None


def job_log(config: dict, results: str | Path, run: Run) -> Path:
    """The log of the job that trains `run`: its own, or with train.trunk_jobs: group its group's."""
    if group_jobs(config["train"]):
        return GroupFiles(trunk_name(run), results).log
    return RunFiles(run.id, results).log


def run_status(
    results: Path, run_id: str, running_within_s: float | None = None, now: float | None = None, log: Path | None = None
) -> str:
    """With `running_within_s`, an unfinished run whose curve, log or checkpoint changed that
    recently is "running" unless its job's log (`log`, default the run's own) ends in a
    traceback (the status view's rule); the audit leaves it None."""
    metrics = read_metrics(results, run_id)
    if metrics is not None:
        return "diverged" if metrics.get("diverged") else "done"
    files = RunFiles(run_id, results)
    log = Path(log) if log is not None else files.log
    if running_within_s is not None:
        active = last_activity(files)
        recent = active is not None and (now if now is not None else time.time()) - active <= running_within_s
        if recent and error_line(tail_lines(log)) is None:  # a log ending in a traceback: it stopped
            return "running"
    if files.state.exists():
        return "interrupted"
    if log.exists() or files.log.exists() or files.curve.exists():
        return "failed"
    return "not started"


def measured_costs(config: dict, bench_dir: str | Path = BENCH_DIR) -> tuple[dict, Path | None]:
    """Per-size job costs measured on `audit.device` ({} when none), and the file they came from.
    Compiled runs (train.compile, or auto on a CUDA measurement) take the warm-cache job, with
    the empty-cache job's fixed cost as `cold_fixed_s`: with the shared compile cache only a
    shape's first run compiles from nothing."""
    device = config.get("audit", {}).get("device")
    path = Path(bench_dir) / f"{device}.json"
    if not device or not path.exists():
        return {}, None
    cost = json.loads(path.read_text()).get("run_cost")
    if not cost:
        return {}, None
    compile_ = config["train"].get("compile", "auto")
    kind = "warm" if compile_ is True or (compile_ == "auto" and cost["device_type"] == "cuda") else "eager"
    return {
        size: {**e[kind], "cold_fixed_s": e.get("cold", e[kind])["fixed_s"] if kind == "warm" else e[kind]["fixed_s"]}
        for size, e in cost["sizes"].items()
        if kind in e
    }, path


def evaluations(steps: int, train: dict) -> int:
    """Evaluations in a run, as train_run makes them: at log points that are eval points, and at the end."""
    every = math.lcm(train["log_every"], train["eval_every"])
    return steps // every + (steps % every != 0)


def cost_model(config: dict, bench_dir: str | Path = BENCH_DIR):
    """hours(size, steps, tokens, first_of_shape) -> (estimated GPU-hours of one run, where the
    figures came from); the first run of a compiled shape pays the compile from an empty cache."""
    train = config["train"]
    rates = config.get("audit", {}).get("tokens_per_second", {})
    measured, path = measured_costs(config, bench_dir)

    def hours(size: str, steps: int, tokens: int, first_of_shape: bool = False) -> tuple[float, str]:
        c = measured.get(size)
        if c:
            seconds = (
                c["cold_fixed_s" if first_of_shape else "fixed_s"]
                + tokens / c["tokens_per_s"]
                + evaluations(steps, train) * train["eval_tokens"] / c["eval_tokens_per_s"]
                + (steps - 1) // train["checkpoint_every"] * c["checkpoint_s"]
            )
            return seconds / 3600, f"measured ({path.name})"
        if size in rates:
            return tokens / rates[size] / 3600, CONFIG_RATES
        return float("nan"), "none"

    return hours


def grid_table(config: dict, results: str | Path | None = "results", bench_dir: str | Path = BENCH_DIR) -> pd.DataFrame:
    """One row per run: its axes, planned tokens, estimated GPU-hours (and their source) and current
    status (None without a results folder).

    With train.shared_trunk a branching run's estimate is its own job (its warmdown, from its
    branch step) plus the trunk segment that ends at its branch step, each a job with its fixed
    cost: summed over the grid, every trunk step counts once. `est_gpu_hours_alone` is the same
    run trained from step 0, as with shared_trunk: false."""
    train = config["train"]
    hours = cost_model(config, bench_dir)
    plan = build_plan(config)
    jobs = plan.jobs_charged()  # with train.trunk_jobs: group, a group's job counts on its first member
    rows, shapes = [], set()
    for run in plan.runs:
        steps, tokens = total_steps(train, run), total_tokens(train, run)
        shape = (run.size, run.bits, tokens // steps)  # what a compiled graph depends on
        alone, source = hours(run.size, steps, tokens, shape not in shapes)
        est, branch = alone, plan.branches.get(run.id)
        if branch is not None:
            per_step = tokens // steps
            segment, own = plan.segment_steps(run.id), plan.own_steps(run.id)
            est = hours(run.size, own, own * per_step)[0] + (
                hours(run.size, segment, segment * per_step)[0] if segment else 0.0
            )
            if shape not in shapes:  # the first job of a compiled shape compiles from an empty cache
                est += alone - hours(run.size, steps, tokens)[0]
        shapes.add(shape)
        rows.append(
            {
                "run_id": run.id,
                "phase_group": phase_group(run.phase),
                **run.as_dict(),
                "batch_size": run_batch_size(train, run),
                "data_seed": run_data_seed(run),
                "bits_label": bits_label(run.bits),
                "n_params_nominal": size_to_number(run.size),
                "steps": steps,
                "tokens": tokens,
                "trunk": branch.trunk if branch else None,
                "branch_step": branch.step if branch else 0,
                "own_steps": plan.own_steps(run.id),
                "trunk_steps": plan.segment_steps(run.id),
                "jobs": jobs[run.id],
                "est_gpu_hours": est,
                "est_gpu_hours_alone": alone,
                "est_source": source,
                "micro_batches": run_micro_batches(config, run),
                "status": (
                    run_status(Path(results), run.id, log=job_log(config, results, run))
                    if results is not None
                    else None
                ),
            }
        )
    return pd.DataFrame(rows)


def run_micro_batches(config: dict, run: Run, train_config: TrainConfig | None = None) -> int | None:
    """The run's micro-batches per step, as its plan decides them (TrainConfig.plan); None if no count fits."""
    try:
        return (train_config or TrainConfig.from_config(config)).plan(run).micro_batches
    except ValueError:
        return None


def memory_table(config: dict) -> pd.DataFrame:
    """Per size, the modelled peak GPU memory of a training step (qatgrid.memory) in one piece and in
    the micro-batches its runs use: the largest over the size's runs (bit-widths, optimisers, batches).
    A packed size (resources.pack_sizes) has `runs_per_gpu` runs on one GPU: `gpu_gib` is their total
    and `gpu_share` the part of train.gpu_memory_gib it takes (qatgrid.memory.check_pack_memory)."""
    train, vocab = config["train"], config.get("data", {}).get("vocab_size", 1024)
    tc = TrainConfig.from_config(config)
    gpu = train.get("gpu_memory_gib")
    precision = train_precision(train)
    per_size: dict[str, list] = {}
    for run in expand_runs(config):
        batch, k = run_batch_size(train, run), run_micro_batches(config, run, tc)
        args = (run.size, vocab, batch, train["seq_len"], run.bits, run.optimizer, precision)
        peak = step_memory(*args, k).total / GIB if k else float("nan")
        per_size.setdefault(run.size, []).append((batch, step_memory(*args).total / GIB, k, peak))
    rows = []
    for size in sorted(per_size, key=size_to_number):
        batch, whole, ks, peak = zip(*per_size[size])
        pack = runs_per_gpu(size, tc.pack_sizes, tc.pack_runs)
        share = "-"
        if gpu and None not in ks:
            try:
                share = f"{check_pack_memory(size, max(peak) * GIB, pack, gpu * GIB):.0%}"
            except ValueError:  # a fixed train.micro_batches can overfill a pack's GPU
                share = "over"
        rows.append(
            {
                "size": size,
                "batch": max(batch),
                "whole_gib": max(whole),
                # "-": no count fits some run of this size; the workflow stops naming the size
                "micro_batches": "-" if None in ks else max(ks),
                "peak_gib": max(peak),
                "runs_per_gpu": pack,
                "gpu_gib": pack * max(peak),
                "gpu_share": share,
            }
        )
    return pd.DataFrame(rows)


def memory_note(config: dict, table: pd.DataFrame) -> str:
    train, resources = config["train"], config.get("resources", {})
    gpu = train.get("gpu_memory_gib")
    fixed = train.get("micro_batches", "auto")
    packed = resources.get("pack_runs", 1) > 1 and resources.get("pack_sizes")
    how = (
        f"train.micro_batches: {fixed} for every run"
        if fixed != "auto"
        else f"the fewest micro-batches that fit train.gpu_memory_gib: {gpu:g} GiB"
        + (f", or for a packed size its 1/{resources['pack_runs']} share (resources.pack_runs)" if packed else "")
        if gpu
        else "train.gpu_memory_gib is not set: every step in one piece"
    )
    return (
        f"Modelled peak GPU memory of one training step ({train_precision(train)} eager, "
        f"{train['seq_len']} tokens per sequence; qatgrid.memory), the whole batch at once (`whole_gib`) and in "
        f"`micro_batches` ({how}); the largest over each size's runs. `gpu_gib`: the `runs_per_gpu` runs that "
        "share one GPU together (resources.pack_sizes, on a cluster), `gpu_share` of the GPU. `-`: no count fits, "
        "the workflow stops naming the size."
    )


def gpu_hours(config: dict, bench_dir: str | Path = BENCH_DIR) -> dict:
    """The grid's estimated GPU-hours: {"total", "per_run" (run_id -> hours), "source" (run_id ->
    where its figures came from), "per_size" (size -> {"runs", "gpu_hours", "source"})}."""
    table = grid_table(config, None, bench_dir)
    per_size = table.groupby("size").agg(
        runs=("run_id", "size"), gpu_hours=("est_gpu_hours", "sum"), source=("est_source", "first")
    )
    return {
        "total": float(table["est_gpu_hours"].sum()),
        "per_run": dict(zip(table["run_id"], table["est_gpu_hours"])),
        "source": dict(zip(table["run_id"], table["est_source"])),
        "per_size": per_size.to_dict(orient="index"),
    }


def count_check(table: pd.DataFrame, expected: dict[str, int]) -> list[dict]:
    """The grid's counts beside the expected ones: one row per key of `audit.expected_runs`
    (a phase group or 'total') and per phase group of the grid that the mapping does not list
    ({"group", "planned", "expected"}; expected None when not listed)."""
    counts = table.groupby("phase_group").size().to_dict() if len(table) else {}
    counts["total"] = len(table)
    groups = list(expected) + [g for g in counts if g not in expected and g != "total"]
    return [{"group": g, "planned": counts.get(g, 0), "expected": expected.get(g)} for g in groups]


def check_counts(table: pd.DataFrame, expected: dict[str, int]) -> list[str]:
    """Every difference between the grid and `audit.expected_runs`, which must list each phase
    group of the grid: a grid with a phase nobody counted, or no counts at all, never passes."""
    if not expected:
        return ["audit.expected_runs is not declared (the grid's runs per phase group and in total)"]
    return [
        f"{r['group']}: grid has {r['planned']} runs, expected {r['expected']}"
        if r["expected"] is not None
        else f"{r['group']}: grid has {r['planned']} runs, audit.expected_runs does not list it"
        for r in count_check(table, expected)
        if r["planned"] != r["expected"]
    ]


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def report(config: dict, table: pd.DataFrame, storage: tuple[str | None, list[str]] = (None, [])) -> str:
    """The audit in markdown; `storage`: qatgrid.storage.storage_report's warning and section."""
    expected = config.get("audit", {}).get("expected_runs", {})
    per_phase = (
        table.groupby(["phase_group", "phase"])
        .agg(runs=("run_id", "size"), gpu_hours=("est_gpu_hours", "sum"))
        .reset_index()
    )
    status = table.pivot_table(index="phase", columns="status", values="run_id", aggfunc="size", fill_value=0)
    status = status.reindex(columns=[s for s in STATUSES if s != "running"], fill_value=0).reset_index()
    per_size = (
        table.groupby("size")
        .agg(
            n_params=("n_params_nominal", "first"),
            runs=("run_id", "size"),
            gpu_hours=("est_gpu_hours", "sum"),
            source=("est_source", "first"),
        )
        .sort_values("n_params")
        .reset_index()
        .drop(columns="n_params")
    )
    axes = []
    for axis in ("bits_label" if a == "bits" else a for a in AXES):
        for level, n in table.groupby(axis, sort=True).size().items():
            axes.append({"axis": axis.removesuffix("_label"), "level": level, "runs": n})
    mismatches = check_counts(table, expected)
    memory = memory_table(config)
    check = ["## Check against the study's counts", ""]
    for r in count_check(table, expected):
        if r["expected"] is None:
            check.append(f"- {r['group']}: {r['planned']} planned, not in audit.expected_runs — MISMATCH")
        else:
            verdict = "OK" if r["planned"] == r["expected"] else "MISMATCH"
            check.append(f"- {r['group']}: {r['planned']} planned, {r['expected']} expected — {verdict}")
    unfinished = table[table["status"].isin(["diverged", "interrupted", "failed"])][["run_id", "status"]]
    return "\n".join(
        [
            "# Grid audit",
            "",
            *([storage[0], ""] if storage[0] else []),
            f"{len(table)} training runs; estimated {table['est_gpu_hours'].sum():.4g} GPU-hours.",
            "",
            estimate_note(config, per_size),
            "",
            sharing_note(config, table),
            "",
            *check,
            "",
            "## Runs per phase",
            "",
            _md_table(per_phase),
            "",
            "## Status (from results/)",
            "",
            _md_table(status),
            "",
            "## Runs and GPU-hours per size",
            "",
            _md_table(per_size),
            "",
            f"Held-out sizes for the penalty law: {', '.join(config['analysis']['heldout_sizes']) or 'none'}",
            "",
            "## GPU memory per size",
            "",
            memory_note(config, memory),
            "",
            _md_table(memory) if len(memory) else "none",
            "",
            "## Runs per axis level",
            "",
            _md_table(pd.DataFrame(axes)),
            "",
            "## Diverged, interrupted or failed runs",
            "",
            _md_table(unfinished) if len(unfinished) else "none",
            "",
            *storage[1],
            *([""] if storage[1] else []),
            *(["**MISMATCH**: " + "; ".join(mismatches)] if mismatches else []),
        ]
    )


def sharing_note(config: dict, table: pd.DataFrame) -> str:
    """What shared trunks (train.shared_trunk) save: GPU-hours, steps and jobs, shared against alone."""
    alone, shared = table["est_gpu_hours_alone"].sum(), table["est_gpu_hours"].sum()
    steps_alone = table["steps"].sum()
    steps_shared = table["own_steps"].sum() + table["trunk_steps"].sum()
    trunks = table["trunk"].dropna().nunique()
    if not trunks:
        on = config["train"].get("shared_trunk", True)
        return "Shared trunks: " + ("no run shares a trunk." if on else "off (train.shared_trunk: false).")
    return (
        f"Shared trunks: {trunks} trunks serve {table['trunk'].notna().sum()} runs; estimated "
        f"{shared:.4g} GPU-hours against {alone:.4g} with every run trained alone "
        f"({shared / alone:.2f}x); {steps_shared:,} optimiser steps against {steps_alone:,} "
        f"({steps_shared / steps_alone:.2f}x); {table['jobs'].sum():,} training jobs "
        f"({'one per group' if group_jobs(config['train']) else 'trunk segments and runs'}) "
        f"against {len(table):,}."
    )


def estimate_note(config: dict, per_size: pd.DataFrame) -> str:
    """Where the estimate came from, size by size."""
    device = config.get("audit", {}).get("device")
    by_source = per_size.groupby("source", sort=False)["size"].apply(", ".join)
    parts = []
    for source, sizes in by_source.items():
        if source.startswith("measured"):
            parts.append(
                f"{sizes}: throughput and per-run overhead measured on `{device}` {source.removeprefix('measured ')} "
                "by `benchmarks/bench_compile.py`"
            )
        elif source == CONFIG_RATES:
            parts.append(f"{sizes}: `{CONFIG_RATES}` (tokens / rate; no per-run overhead)")
        else:
            parts.append(f"{sizes}: no figure (counted as 0)")
    missing = (
        f" No run costs measured for `audit.device: {device}`."
        if device and not by_source.index.str.startswith("measured").any()
        else ""
    )
    return "Estimate per size — " + "; ".join(parts) + "." + missing


def write_audit(
    config: dict,
    results: str | Path,
    md_path: str | Path,
    csv_path: str | Path,
    bench_dir: str | Path = BENCH_DIR,
    sources: dict[str, str] | None = None,
    profile: str | Path | None = None,
) -> pd.DataFrame:
    """Write the audit; raise AuditMismatch (after writing) when the counts differ from `audit.expected_runs`.
    `sources` (top-level key -> config file it came from, qatgrid.config.merge_config_layers) lets the
    error say when the audit block belongs to another file than the sweeps. `profile`: the cluster
    profile's config.yaml, whose `jobs:` sets the storage peak (qatgrid.storage.storage_report)."""
    from .aggregate import write_table
    from .io import atomic_path
    from .storage import storage_report, storage_table

    table = grid_table(config, results, bench_dir)
    storage = storage_report(config, table, results, profile)
    write_table(pd.concat([table, storage_table(config, table)], axis=1), csv_path)
    with atomic_path(md_path) as tmp:
        tmp.write_text(report(config, table, storage) + "\n")
    mismatches = check_counts(table, config.get("audit", {}).get("expected_runs", {}))
    if mismatches:
        hint = ""
        if sources and sources.get("audit") != sources.get("sweeps"):
            hint = (
                f" (the audit block comes from {sources.get('audit', 'no config file')}, the sweeps from "
                f"{sources['sweeps']}: give {sources['sweeps']} an audit block with this grid's expected_runs)"
            )
        raise AuditMismatch("grid does not match the study: " + "; ".join(mismatches) + hint)
    return table
