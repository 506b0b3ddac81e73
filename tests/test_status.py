import importlib
import json
import os
import re
import subprocess
import sys
import time
import tomllib

import pytest
from conftest import REPO, load_default_config
from synthetic import fill_results

from qatgrid.audit import STATUSES, gpu_hours
from qatgrid.runs import expand_runs
from qatgrid.status import grid_status, main

HOURS_AGO_2 = time.time() - 7200


def curve_line(run, step, loss, eta, t):
    return (
        json.dumps(
            {
                "run_id": run.id,
                "step": step,
                "steps": 100,
                "train_loss": loss,
                "tokens_per_s": 9000.0,
                "elapsed_s": 10.0 * step,
                "eta_s": eta,
                "time": t,
            }
        )
        + "\n"
    )


def touch(path, text="", mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if mtime is not None:
        os.utime(path, (mtime, mtime))


@pytest.fixture
def planted(tmp_path):
    """The default grid with 5 done, 1 diverged, 2 running, 1 interrupted, 1 failed run; the rest not started."""
    cfg, results, now = load_default_config(), tmp_path / "results", time.time()
    cfg["train"]["shared_trunk"] = False  # runs from step 0; trunks in status: tests/test_trunks.py
    runs = expand_runs(cfg)
    p2 = [r for r in runs if r.phase == "phase2"]
    int4 = next(r for r in runs if r.phase == "phase5-int4")
    adamw = next(r for r in runs if r.phase == "phase5-adamw")
    fill_results(results, p2[:5])
    div = results / "runs" / p2[5].id / "metrics.json"
    touch(div, json.dumps({"run_id": p2[5].id, "diverged": True, "wall_seconds": 360.0}))
    # running: a curve written seconds ago, ending in a half-written line
    touch(
        results / "runs" / p2[6].id / "curve.jsonl",
        curve_line(p2[6], 10, 5.5, 90.0, now - 20) + curve_line(p2[6], 20, 5.1234, 80.0, now - 5) + '{"run_id": "p',
    )
    touch(results / "logs" / "train" / f"{p2[6].id}.log", "started\n")
    # running: just started, only its log so far
    touch(results / "logs" / "train" / f"{int4.id}.log", "loading data\n")
    # failed: a half-written metrics.json (killed while writing, no atomic rename), 2 h old
    touch(results / "runs" / p2[7].id / "metrics.json", '{"run_id": "ph', HOURS_AGO_2)
    touch(results / "logs" / "train" / f"{p2[7].id}.log", "x\n", HOURS_AGO_2)
    # interrupted: preempted at step 50 with a checkpoint; the log ends in a traceback
    touch(results / "runs" / adamw.id / "curve.jsonl", curve_line(adamw, 50, 4.5, 50.0, HOURS_AGO_2), HOURS_AGO_2)
    touch(results / "state" / adamw.id / "last.pt", "ckpt", HOURS_AGO_2)
    log_text = "".join(f"line {i}\n" for i in range(10)) + "Interrupted: stopped by signal 12 at step 50\n"
    touch(results / "logs" / "train" / f"{adamw.id}.log", log_text, HOURS_AGO_2)
    unshared = tmp_path / "unshared.yaml"  # the same settings for `qatgrid status` on the command line
    unshared.write_text("train: {shared_trunk: false}\n")
    return cfg, results, {"p2": p2, "int4": int4, "adamw": adamw, "configfile": str(unshared)}


def test_counts_lists_and_gpu_hours(planted):
    cfg, results, r = planted
    s = grid_status(cfg, results, running_minutes=15, log_lines=3)
    planned = {}
    for run in expand_runs(cfg):
        planned[run.phase] = planned.get(run.phase, 0) + 1
    assert s["phases"]["phase2"] == {
        "planned": planned["phase2"],
        "done": 5,
        "diverged": 1,
        "running": 1,
        "interrupted": 0,
        "failed": 1,
        "not started": planned["phase2"] - 8,
    }
    assert s["phases"]["phase5-int4"] == {
        "planned": 12,
        "done": 0,
        "diverged": 0,
        "running": 1,
        "interrupted": 0,
        "failed": 0,
        "not started": 11,
    }
    assert s["phases"]["phase5-adamw"] == {
        "planned": 4,
        "done": 0,
        "diverged": 0,
        "running": 0,
        "interrupted": 1,
        "failed": 0,
        "not started": 3,
    }
    assert s["phases"]["phase5-heldout"]["not started"] == 4
    total = sum(planned.values())
    assert s["total"] == {
        "planned": total,
        "done": 5,
        "diverged": 1,
        "running": 2,
        "interrupted": 1,
        "failed": 1,
        "not started": total - 10,
    }
    running = {e["run_id"]: e for e in s["running"]}
    assert set(running) == {r["p2"][6].id, r["int4"].id}
    assert (running[r["p2"][6].id]["step"], running[r["p2"][6].id]["train_loss"], running[r["p2"][6].id]["eta_s"]) == (
        20,
        5.1234,
        80.0,
    )
    assert 4 < running[r["p2"][6].id]["updated_s_ago"] < 60
    assert running[r["int4"].id]["step"] is None
    stopped = {e["run_id"]: e for e in s["stopped"]}
    assert set(stopped) == {r["p2"][7].id, r["adamw"].id}
    assert stopped[r["adamw"].id]["log_tail"] == ["line 8", "line 9", "Interrupted: stopped by signal 12 at step 50"]
    assert stopped[r["adamw"].id]["checkpoint"] and stopped[r["adamw"].id]["step"] == 50
    assert not stopped[r["p2"][7].id]["checkpoint"]
    # 5 synthetic runs of 600 s plus the diverged run's 360 s
    assert s["gpu_hours"]["spent"] == pytest.approx((5 * 600 + 360) / 3600)
    assert s["gpu_hours"]["finished_runs"] == 6
    # the audit's estimate for the whole grid (its own arithmetic is checked in tests/test_audit.py)
    assert s["gpu_hours"]["estimated_grid"] == pytest.approx(gpu_hours(cfg)["total"])
    assert s["gpu_hours"]["estimated_grid"] > 0


def test_a_longer_window_counts_the_stale_runs_as_running(planted):
    cfg, results, _ = planted
    s = grid_status(cfg, results, running_minutes=180)
    assert (s["total"]["running"], s["total"]["interrupted"], s["total"]["failed"]) == (4, 0, 0)


def test_cli_text_and_json(planted, monkeypatch, capsys):
    cfg, results, r = planted
    n_phase2 = sum(run.phase == "phase2" for run in expand_runs(cfg))
    total = len(expand_runs(cfg))
    monkeypatch.chdir(REPO)
    assert main(["--configfile", r["configfile"], "--results", str(results), "--log-lines", "2"]) == 0
    text = capsys.readouterr().out
    assert re.search(rf"^phase2 +{n_phase2} +5 +1 +1 +0 +1 +{n_phase2 - 8}$", text, re.M)
    assert re.search(rf"^total +{total} +5 +1 +2 +1 +1 +{total - 10}$", text, re.M)
    assert re.search("^  " + re.escape(r["p2"][6].id) + r"  step 20/100  loss 5\.1234  eta 0:01:20", text, re.M)
    assert re.search(
        "^  " + re.escape(r["adamw"].id) + r"  stopped after step 50/100 \(last logged\); a retry resumes", text, re.M
    )
    assert "    | Interrupted: stopped by signal 12 at step 50" in text
    assert re.search(
        r"^GPU-hours: 0\.93 spent by 6 finished runs; "
        rf"audit estimate for the whole grid {gpu_hours(cfg)['total']:.2f}$",
        text,
        re.M,
    )
    assert main(["--configfile", r["configfile"], "--results", str(results), "--json"]) == 0
    s = json.loads(capsys.readouterr().out)
    assert s["total"]["planned"] == total and len(s["running"]) == 2 and len(s["stopped"]) == 2


def test_no_results_means_nothing_started(tmp_path):
    cfg = load_default_config()
    n = len(expand_runs(cfg))
    s = grid_status(cfg, tmp_path / "nothing")
    assert s["total"] == {"planned": n, **{k: 0 for k in STATUSES}, "not started": n}
    assert s["running"] == s["stopped"] == [] and s["gpu_hours"]["spent"] == 0


@pytest.mark.parametrize(
    "text, message",
    [
        (
            "train: {steps: 0}\n",
            r"Error validating config file(.|\n)*0 is less than the minimum of 1(.|\n)*\['train'\]\['steps'\]",
        ),
        ("analysis: {heldout_sizes: ['15M']}\n", r"analysis.heldout_sizes names '15M', which no sweep trains"),
    ],
)
def test_invalid_config_is_a_clear_error(tmp_path, monkeypatch, capsys, text, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text)
    monkeypatch.chdir(REPO)
    assert main(["--configfile", str(bad), "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qatgrid status: invalid configuration:") and re.search(message, err)


def test_entry_point_and_no_torch(tmp_path):
    target = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]["qatgrid"]
    module, func = target.split(":")
    assert callable(getattr(importlib.import_module(module), func))
    code = (
        "import sys; from qatgrid.cli import main; rc = main(['status', '--results', sys.argv[1]]); "
        "assert 'torch' not in sys.modules, 'status imported torch'; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 0, proc.stderr
    n = len(expand_runs(load_default_config()))
    assert re.search(rf"^total +{n} +0 +0 +0 +0 +0 +{n}$", proc.stdout, re.M)


def test_eta_scales_the_audit_estimate_of_what_is_left_by_the_measured_rate(planted, capsys, monkeypatch):
    """ETA = the audit's estimate of the runs not finished x (measured wall seconds / estimated
    seconds) of the done runs; a diverged run stopped early, so it is no measure of the rate."""
    cfg, results, r = planted
    per_run = gpu_hours(cfg)["per_run"]
    done = [run.id for run in r["p2"][:5]]  # 600 s each (tests/synthetic.fill_results)
    left = [rid for rid in per_run if rid not in done and rid != r["p2"][5].id]
    rate = 5 * 600 / 3600 / sum(per_run[i] for i in done)
    e = grid_status(cfg, results)["eta"]
    assert e["runs_left"] == len(left) == len(per_run) - 6 and e["rate_runs"] == 5
    assert e["rate"] == pytest.approx(rate) and e["estimated_gpu_hours"] == pytest.approx(sum(per_run[i] for i in left))
    assert e["gpu_hours"] == pytest.approx(rate * sum(per_run[i] for i in left))
    assert e["wall_s"] == pytest.approx(e["gpu_hours"] * 3600 / 2)  # two runs in flight
    monkeypatch.chdir(REPO)
    assert main(["--configfile", r["configfile"], "--results", str(results)]) == 0
    assert re.search(
        rf"^ETA: {e['gpu_hours']:.2f} GPU-hours left for {len(left)} runs \(the audit's "
        rf"{e['estimated_gpu_hours']:.2f} × {rate:.2f}, the time the 5 done runs took over their estimate\); "
        r"about \d+:\d\d:\d\d if as many runs as now run side by side$",
        capsys.readouterr().out,
        re.M,
    )


def test_eta_by_hand_before_and_after_the_grid(tmp_path):
    """Two runs at a known throughput: one done in twice its estimate, so the other is expected to
    take twice its own; with none done the estimate stands unscaled; with all done nothing is left."""
    cfg = load_default_config()
    cfg["sweeps"] = [{"phase": "p", "bits": [16], "sizes": ["0.1M"], "warmdown_fracs": [0.33, 0.5], "seeds": [0]}]
    cfg["audit"] = {"tokens_per_second": {"0.1M": 1024.0}}  # 100 steps x 8 x 128 tokens: 100 s a run
    cfg["train"]["shared_trunk"] = False
    first, second = expand_runs(cfg)
    e = grid_status(cfg, tmp_path / "results")["eta"]
    assert (e["runs_left"], e["rate"], e["gpu_hours"], e["wall_s"]) == (2, None, pytest.approx(200 / 3600), None)
    fill_results(tmp_path / "results", [first])
    metrics = tmp_path / "results" / "runs" / first.id / "metrics.json"
    metrics.write_text(json.dumps({**json.loads(metrics.read_text()), "wall_seconds": 200.0}))
    e = grid_status(cfg, tmp_path / "results")["eta"]
    assert (e["runs_left"], e["rate"], e["gpu_hours"]) == (1, pytest.approx(2.0), pytest.approx(200 / 3600))
    assert e["runs_without_estimate"] == 0
    cfg["audit"] = {}  # no figure for the size: the run left is counted as 0, and said so
    e = grid_status(cfg, tmp_path / "results")["eta"]
    assert (e["runs_left"], e["runs_without_estimate"], e["gpu_hours"]) == (1, 1, 0)
    from qatgrid.status import format_eta

    assert format_eta(e).endswith("; 1 of the runs left have no estimate (counted as 0)")
    fill_results(tmp_path / "results", [second])
    s = grid_status(cfg, tmp_path / "results")
    assert s["eta"]["runs_left"] == 0 and s["eta"]["gpu_hours"] == 0
    from qatgrid.status import format_status

    assert format_status(s).endswith("ETA: nothing left to run")
