"""`qatgrid status`: where the configured grid stands, read from what runs write.

Read-only and cheap (no torch, no training code), so it is safe to run while Snakemake or
SLURM is running the grid. A run's state comes from qatgrid.audit.run_status, in the audit's
words (qatgrid.audit.STATUSES):
- done / diverged: metrics.json present (a half-written one counts as not there)
- running: no metrics, and its curve.jsonl, training log or state checkpoint changed within
  the last `--running-minutes` (default 15) minutes, and its log does not end in a traceback
- interrupted / failed: no metrics, something written but nothing changed lately (crashed,
  killed, preempted and waiting for its retry), with a checkpoint a retry resumes from
  (interrupted) or none (failed). Both are listed as stopped runs, each with the error line of
  its log's last traceback (workflow scripts write tracebacks to their logs)
- not started: nothing written yet
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

from .audit import STATUSES
from .config import load_config
from .logs import split_traceback, tail_lines
from .plan import build_plan
from .progress import hms
from .runfiles import RunFiles, TrunkFiles
from .runs import expand_runs

COLUMNS = ("planned", *STATUSES)
STOPPED = ("interrupted", "failed")  # listed with their logs' last lines


def tail_record(path: Path) -> dict | None:
    """The last complete record of a curve file (reads only its end; a half-written line is skipped)."""
    for line in reversed(tail_lines(path)):
        try:
            return json.loads(line)
        except json.JSONDecodeError:
            continue
    return None


def grid_status(
    config: dict,
    results: str | Path = "results",
    running_minutes: float = 15,
    log_lines: int = 5,
    now: float | None = None,
) -> dict:
    """Counts per phase, runs in flight, stopped (interrupted or failed) runs with their last log
    lines, GPU-hours."""
    from .audit import grid_table, job_log, read_metrics, run_status

    results, now = Path(results), now if now is not None else time.time()
    table = grid_table(config, None)  # the audit's estimates, run by run, in grid order
    # est: what is left to train (with shared trunks, each trunk counted once); alone: a run from step
    # 0, what a finished run's wall_seconds measure (a branched run's include its trunk's prefix)
    est_h, alone_h = table["est_gpu_hours"].tolist(), table["est_gpu_hours_alone"].tolist()
    counts: dict[str, Counter] = {}
    running, stopped, spent_s, finished = [], [], 0.0, 0
    trunk_s: dict[str, float] = {}  # a shared trunk's seconds, counted once however many runs branch off it
    done_wall_s, done_est_h, rate_runs, left_est_h, left, unestimated = 0.0, 0.0, 0, 0.0, 0, 0
    for run, est, alone in zip(expand_runs(config), est_h, alone_h):
        log = job_log(config, results, run)  # with train.trunk_jobs: group, its group job's
        status = run_status(results, run.id, running_minutes * 60, now, log)
        counts.setdefault(run.phase, Counter())[status] += 1
        files = RunFiles(run.id, results)
        if status in ("done", "diverged"):
            metrics = read_metrics(results, run.id)
            wall, shared = float(metrics.get("wall_seconds") or 0.0), float(metrics.get("trunk_seconds") or 0.0)
            spent_s += wall - shared
            if metrics.get("trunk"):
                trunk_s[metrics["trunk"]] = max(trunk_s.get(metrics["trunk"], 0.0), shared)
            finished += 1
            if status == "done" and wall > 0 and alone == alone:  # a diverged run stops early: not a rate
                done_wall_s, done_est_h, rate_runs = done_wall_s + wall, done_est_h + alone, rate_runs + 1
        else:
            left += 1
            if est == est:
                left_est_h += est
            else:  # NaN: a size with neither a measurement nor audit.tokens_per_second
                unestimated += 1
        if status == "running" or status in STOPPED:
            last = tail_record(files.curve)
            if last is not None and last.get("run_id") != run.id:
                last = None  # a stray file: training itself refuses it, naming the file
            entry = {
                "run_id": run.id,
                "step": last and last.get("step"),
                "steps": last and last.get("steps"),
                "train_loss": last and last.get("train_loss"),
                "eta_s": last and last.get("eta_s"),
                "updated_s_ago": (now - last["time"]) if last and last.get("time") else None,
            }
            if status == "running":
                running.append(entry)
            else:
                entry["checkpoint"] = files.state.exists()
                entry["log"] = str(log)
                # the exception that ended its last attempt, if one did, and the log lines before it
                before, entry["error"] = split_traceback(tail_lines(Path(entry["log"])))
                entry["log_tail"] = before[-log_lines:] if log_lines > 0 else []
                stopped.append(entry)
    phases = {
        phase: {"planned": sum(c.values()), **{k: c.get(k, 0) for k in COLUMNS[1:]}} for phase, c in counts.items()
    }
    total = {k: sum(p[k] for p in phases.values()) for k in COLUMNS}
    spent_s += sum(trunk_s.values())
    estimate = float(sum(e for e in est_h if e == e))
    # The grid's ETA: the audit's estimate of what is left, scaled by how the finished runs compared
    # with their own estimates (measured wall seconds / estimated seconds); unscaled before any is done.
    rate = done_wall_s / 3600 / done_est_h if done_est_h > 0 else None
    remaining = left_est_h * (rate if rate is not None else 1.0)
    return {
        "results": str(results),
        "running_minutes": running_minutes,
        "phases": phases,
        "total": total,
        "running": running,
        "trunks_running": trunks_in_flight(config, results, running_minutes * 60, now),
        "stopped": stopped,
        "gpu_hours": {"spent": spent_s / 3600, "finished_runs": finished, "estimated_grid": estimate},
        "eta": {
            "runs_left": left,
            "runs_without_estimate": unestimated,
            "estimated_gpu_hours": left_est_h,
            "rate": rate,
            "rate_runs": rate_runs,
            "gpu_hours": remaining,
            # wall time if the runs in flight now stay as many until the end (None when none run)
            "wall_s": remaining * 3600 / len(running) if running else None,
        },
    }


def trunks_in_flight(config: dict, results: Path, within_s: float, now: float) -> list[dict]:
    """Trunk segments (qatgrid.trunks) whose curve, log or checkpoint changed within `within_s`
    and whose branch state is not written yet."""
    from .audit import last_activity

    running = []
    for branch in build_plan(config).branches.values():
        if not branch.segment:
            continue
        files = TrunkFiles(branch.run_id, results)
        if files.branch_state.exists() or RunFiles(branch.run_id, results).metrics.exists():
            continue
        active = last_activity(files)
        if active is None or now - active > within_s:
            continue
        last = tail_record(files.curve) or {}
        running.append(
            {
                "trunk": branch.trunk,
                "branch_of": branch.run_id,
                "from_step": branch.previous_step,
                "to_step": branch.step,
                "step": last.get("step"),
                "train_loss": last.get("train_loss"),
                "updated_s_ago": now - active,
            }
        )
    return running


def format_status(s: dict) -> str:
    width = max(len("phase"), *(len(p) for p in s["phases"]))
    header = f"{'phase':<{width}}  " + "  ".join(f"{c:>11}" for c in COLUMNS)
    rows = [
        f"{p:<{width}}  " + "  ".join(f"{v[c]:>11}" for c in COLUMNS)
        for p, v in [*s["phases"].items(), ("total", s["total"])]
    ]
    out = [header, *rows, ""]
    out.append(
        f"Running ({len(s['running'])}; curve, log or checkpoint changed in the last {s['running_minutes']:g} min):"
    )
    for r in s["running"]:
        loss = f"{r['train_loss']:.4f}" if r["train_loss"] is not None else "?"
        step = f"{r['step']}/{r['steps']}" if r["step"] is not None else "?/?"
        out.append(
            f"  {r['run_id']}  step {step}  loss {loss}  eta {hms(r['eta_s'])}  (updated {hms(r['updated_s_ago'])} ago)"
        )
    if s["trunks_running"]:
        out += ["", f"Shared trunks running ({len(s['trunks_running'])}):"]
        for r in s["trunks_running"]:
            loss = f"{r['train_loss']:.4f}" if r["train_loss"] is not None else "?"
            out.append(
                f"  {r['trunk']}  step {r['step'] if r['step'] is not None else '?'}, segment {r['from_step']}"
                f"-{r['to_step']} (branch of {r['branch_of']})  loss {loss}  (updated {hms(r['updated_s_ago'])} ago)"
            )
    out += ["", f"Interrupted or failed ({len(s['stopped'])}):"]
    for r in s["stopped"]:
        where = (
            f"after step {r['step']}/{r['steps']} (last logged)"
            if r["step"] is not None
            else "before its first logged step"
        )
        resume = "a retry resumes from its checkpoint" if r["checkpoint"] else "no checkpoint"
        out.append(f"  {r['run_id']}  stopped {where}; {resume}; log {r['log']}")
        if r.get("error"):
            out.append(f"    error: {r['error']}")
        out += [f"    | {line}" for line in r["log_tail"]]
    g = s["gpu_hours"]
    out += [
        "",
        f"GPU-hours: {g['spent']:.2f} spent by {g['finished_runs']} finished runs; "
        f"audit estimate for the whole grid {g['estimated_grid']:.2f}",
        format_eta(s["eta"]),
    ]
    return "\n".join(out)


def format_eta(e: dict) -> str:
    if e["runs_left"] == 0:
        return "ETA: nothing left to run"
    if e["rate"] is None:
        how = "the audit's estimate, unscaled: no run is done yet"
    else:
        how = (
            f"the audit's {e['estimated_gpu_hours']:.2f} × {e['rate']:.2f}, the time the {e['rate_runs']} done "
            "runs took over their estimate"
        )
    wall = ""
    if e["wall_s"] is not None:
        wall = f"; about {hms(e['wall_s'])} if as many runs as now run side by side"
    if e["runs_without_estimate"]:
        wall += f"; {e['runs_without_estimate']} of the runs left have no estimate (counted as 0)"
    return f"ETA: {e['gpu_hours']:.2f} GPU-hours left for {e['runs_left']} runs ({how}){wall}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="qatgrid status", description=__doc__.splitlines()[0])
    parser.add_argument("--configfile", nargs="+", default=[], help="config files merged over config/config.yaml")
    parser.add_argument("--results", default="results", help="results folder (default: results)")
    parser.add_argument(
        "--running-minutes",
        type=float,
        default=15,
        help="an unfinished run that wrote within this many minutes counts as running (default 15)",
    )
    parser.add_argument(
        "--log-lines", type=int, default=5, help="log lines shown per interrupted or failed run (default 5)"
    )
    parser.add_argument("--json", action="store_true", help="print JSON for scripts")
    args = parser.parse_args(argv)
    try:
        # the workflow in this folder, as `snakemake` here would load it
        config = load_config(args.configfile, base="config/config.yaml", schema="config/schema/config.schema.yaml")
    except Exception as e:  # schema errors (WorkflowError), check_config's ValueError, missing files
        print(f"qatgrid status: invalid configuration: {e}", file=sys.stderr)
        return 2
    s = grid_status(config, args.results, args.running_minutes, args.log_lines)
    print(json.dumps(s, indent=2) if args.json else format_status(s))
    return 0
