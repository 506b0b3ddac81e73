"""Audit a grid before (and while) it runs: counts, cost estimate, and what is done.

Nothing is trained or loaded: the grid comes from `expand_runs`, the status of
each run from the files under `results/`:
- done:     metrics.json present, not diverged
- diverged: metrics.json present, diverged
- partial:  no metrics, but a resumable checkpoint in results/state/ (interrupted or failed)
- failed:   no metrics, no checkpoint, but a training log (failed, or running right now)
- missing:  nothing yet
"""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from .grid import bits_label, expand_runs, run_batch_size, run_data_seed, total_steps, total_tokens
from .sizes import size_to_number

STATUSES = ("done", "diverged", "partial", "failed", "missing")


class AuditMismatch(ValueError):
    """The grid's run counts differ from the counts the config says the study has."""


def phase_group(phase: str) -> str:
    """'phase5-int4' -> 'phase5': sweeps of one published phase share a prefix."""
    return phase.split("-")[0]


def run_status(results: Path, run_id: str) -> str:
    metrics = results / "runs" / run_id / "metrics.json"
    if metrics.exists():
        return "diverged" if json.loads(metrics.read_text()).get("diverged") else "done"
    if (results / "state" / run_id / "last.pt").exists():
        return "partial"
    if (results / "logs" / "train" / f"{run_id}.log").exists():
        return "failed"
    return "missing"


def grid_table(config: dict, results: str | Path = "results") -> pd.DataFrame:
    """One row per run: its axes, planned tokens, estimated GPU-hours and current status."""
    results = Path(results)
    train = config["train"]
    tps = config.get("audit", {}).get("tokens_per_second", {})
    rows = []
    for run in expand_runs(config):
        steps, tokens = total_steps(train, run), total_tokens(train, run)
        rate = tps.get(run.size)
        rows.append({"run_id": run.id, "phase_group": phase_group(run.phase), **run.as_dict(),
                     "batch_size": run_batch_size(train, run), "data_seed": run_data_seed(run),
                     "bits_label": bits_label(run.bits), "n_params_nominal": size_to_number(run.size),
                     "steps": steps, "tokens": tokens,
                     "est_gpu_hours": tokens / rate / 3600 if rate else float("nan"),
                     "status": run_status(results, run.id)})
    return pd.DataFrame(rows)


def check_counts(table: pd.DataFrame, expected: dict[str, int]) -> list[str]:
    """Mismatches between the grid and the expected counts ('total' or a phase group)."""
    counts = table.groupby("phase_group").size().to_dict()
    counts["total"] = len(table)
    return [f"{k}: grid has {counts.get(k, 0)} runs, expected {v}" for k, v in expected.items() if counts.get(k, 0) != v]


def _md_table(df: pd.DataFrame) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    for _, r in df.iterrows():
        lines.append("| " + " | ".join(f"{v:.4g}" if isinstance(v, float) else str(v) for v in r) + " |")
    return "\n".join(lines)


def report(config: dict, table: pd.DataFrame) -> str:
    expected = config.get("audit", {}).get("expected_runs", {})
    per_phase = (table.groupby(["phase_group", "phase"]).agg(runs=("run_id", "size"), gpu_hours=("est_gpu_hours", "sum"))
                 .reset_index())
    status = table.pivot_table(index="phase", columns="status", values="run_id", aggfunc="size", fill_value=0)
    status = status.reindex(columns=list(STATUSES), fill_value=0).reset_index()
    per_size = (table.groupby("size").agg(n_params=("n_params_nominal", "first"), runs=("run_id", "size"),
                                          gpu_hours=("est_gpu_hours", "sum"))
                .sort_values("n_params").reset_index().drop(columns="n_params"))
    axes = []
    for axis in ("bits_label", "size", "warmdown_frac", "lr_mult", "seed", "optimizer", "schedule", "length_mult",
                 "batch_size", "data_seed"):
        for level, n in table.groupby(axis, sort=True).size().items():
            axes.append({"axis": axis.removesuffix("_label"), "level": level, "runs": n})
    mismatches = check_counts(table, expected)
    counts = table.groupby("phase_group").size().to_dict()
    check = ["## Check against the study's counts", ""]
    for k, v in expected.items():
        got = len(table) if k == "total" else counts.get(k, 0)
        check.append(f"- {k}: {got} planned, {v} expected — {'OK' if got == v else 'MISMATCH'}")
    unfinished = table[table["status"].isin(["diverged", "partial", "failed"])][["run_id", "status"]]
    return "\n".join([
        "# Grid audit", "",
        f"{len(table)} training runs; estimated {table['est_gpu_hours'].sum():.1f} GPU-hours "
        f"(from `audit.tokens_per_second`; sizes without a throughput figure count as 0).", "",
        *check, "",
        "## Runs per phase", "", _md_table(per_phase), "",
        "## Status (from results/)", "", _md_table(status), "",
        "## Runs and GPU-hours per size", "", _md_table(per_size), "",
        f"Held-out sizes for the penalty law: {', '.join(config['analysis']['heldout_sizes']) or 'none'}", "",
        "## Runs per axis level", "", _md_table(pd.DataFrame(axes)), "",
        "## Diverged, interrupted or failed runs", "",
        _md_table(unfinished) if len(unfinished) else "none", "",
        *(["**MISMATCH**: " + "; ".join(mismatches)] if mismatches else []),
    ])


def write_audit(config: dict, results: str | Path, md_path: str | Path, csv_path: str | Path) -> pd.DataFrame:
    """Write the audit; raise AuditMismatch (after writing) when the counts differ from `audit.expected_runs`."""
    from .aggregate import write_table
    from .io import atomic_path

    table = grid_table(config, results)
    write_table(table, csv_path)
    with atomic_path(md_path) as tmp:
        tmp.write_text(report(config, table) + "\n")
    mismatches = check_counts(table, config.get("audit", {}).get("expected_runs", {}))
    if mismatches:
        raise AuditMismatch("grid does not match the study: " + "; ".join(mismatches))
    return table
