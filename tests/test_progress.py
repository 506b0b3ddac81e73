import json
import logging
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import small_train
from test_train import data_dir  # noqa: F401 (a fixture: the shared tiny corpus)

from qatgrid.checkpoint import load_state
from qatgrid.progress import hms, read_curve, truncate_curve
from qatgrid.runfiles import RunFiles
from qatgrid.runs import Run
from qatgrid.train import train_run

TRAIN = small_train(
    steps=12,
    warmup_steps=2,
    muon_momentum={"warmup_steps": 8},
    log_every=2,
    eval_every=4,
    eval_tokens=1024,
    checkpoint_every=6,
)
RUN = Run("p", 6, "0.1M", 0.25, 1.0, 0)


def train(data_dir, tmp, run=RUN, logging_cfg=None, **overrides):
    cfg = {"train": {**TRAIN, **overrides}, "logging": logging_cfg or {}}
    return train_run(run, cfg, data_dir, RunFiles(run.id, tmp))


def test_hms():
    assert [hms(0), hms(59.6), hms(3725), hms(None), hms(float("nan"))] == ["0:00:00", "0:01:00", "1:02:05", "?", "?"]


def test_log_lines_carry_throughput_eta_and_val_bpb(data_dir, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="qatgrid.train")
    m = train(data_dir, tmp_path)
    lines = [r.getMessage() for r in caplog.records]
    train_re = re.compile(
        "^" + re.escape(RUN.id) + r" step (\d+)/12 train_loss=\d+\.\d{4} tok/s=\d+ "
        r"elapsed=\d+:\d\d:\d\d eta=\d+:\d\d:\d\d$"
    )
    val_re = re.compile("^" + re.escape(RUN.id) + r" step (\d+)/12 val_loss=\d+\.\d{4} val_bpb=\d+\.\d{4}$")
    assert [int(train_re.match(s).group(1)) for s in lines if train_re.match(s)] == [2, 4, 6, 8, 10, 12]
    assert [int(val_re.match(s).group(1)) for s in lines if val_re.match(s)] == [4, 8, 12]
    assert lines[-1].endswith("eta=0:00:00") or val_re.match(lines[-1])
    curve = read_curve(RunFiles(RUN.id, tmp_path).curve, RUN.id)
    assert [r["step"] for r in curve] == [e["step"] for e in m["curve"]]
    assert [r["train_loss"] for r in curve] == [e["train_loss"] for e in m["curve"]]
    assert curve[-1]["val_loss"] == m["final_val_loss"] and curve[-1]["val_bpb"] == pytest.approx(m["final_val_bpb"])
    assert all(r["run_id"] == RUN.id and r["steps"] == 12 and r["tokens_per_s"] > 0 for r in curve)
    assert curve[-1]["eta_s"] == 0 and curve[0]["eta_s"] > 0
    # the throughput is what the clock says: tokens of this process's steps over its time
    assert curve[-1]["tokens_per_s"] == pytest.approx(12 * 4 * 32 / curve[-1]["elapsed_s"], rel=0.05)


def test_read_curve_tolerates_a_half_written_last_line_only(tmp_path):
    p = tmp_path / "curve.jsonl"
    p.write_text('{"run_id": "a", "step": 1}\n{"run_id": "a", "step": 2}\n{"run_id": "a", "st')
    assert [r["step"] for r in read_curve(p, "a")] == [1, 2]
    truncate_curve(p, "a", 1)
    assert p.read_text() == '{"run_id": "a", "step": 1}\n'
    p.write_text('{"run_id": "a", "step": 1}\nnot json\n{"run_id": "a", "step": 3}\n')
    with pytest.raises(ValueError, match=r"curve\.jsonl: line 2 is not a JSON record"):
        read_curve(p, "a")


def test_curve_of_another_run_is_an_error_naming_the_file(data_dir, tmp_path):
    RunFiles(RUN.id, tmp_path).out_dir.mkdir(parents=True)
    stray = RunFiles(RUN.id, tmp_path).curve
    stray.write_text(json.dumps({"run_id": "p/fp16/0.1M/wd25/lr1x/seed0", "step": 2}) + "\n")
    with pytest.raises(ValueError, match=re.escape(str(stray)) + r" holds the curve of run 'p/fp16/"):
        train(data_dir, tmp_path)


KILL_SCRIPT = """
import json, sys
from qatgrid.runs import Run
from qatgrid.runfiles import RunFiles
from qatgrid.train import train_run
run = Run("p", 4, "0.1M", 0.5, 1.0, 5)
train_run(run, {"train": json.loads(sys.argv[1])}, sys.argv[2], RunFiles(run.id, sys.argv[3]))
"""


def test_killed_and_resumed_run_leaves_every_logged_step_exactly_once(data_dir, tmp_path):
    """SIGKILL lands after the curve got records past the last checkpoint (logged every step,
    checkpointed every 5); a half-written line is planted too. The resumed run's curve file
    holds each step once, with the losses of the finished run's metrics."""
    cfg = {**TRAIN, "steps": 40, "log_every": 1, "eval_every": 10, "checkpoint_every": 5}
    files = RunFiles(Run("p", 4, "0.1M", 0.5, 1.0, 5).id, tmp_path)
    out, state = files.out_dir, files.state_dir
    args = [sys.executable, "-c", KILL_SCRIPT, json.dumps(cfg), data_dir, str(tmp_path)]
    proc = subprocess.Popen(args)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the curve is past a checkpoint, mid-interval
        records = read_curve(out / "curve.jsonl") if (out / "curve.jsonl").exists() else []
        if records and records[-1]["step"] >= 12 and records[-1]["step"] % 5 != 0:
            break
        time.sleep(0.01)
    proc.kill()
    assert proc.wait() == -signal.SIGKILL, "the run finished before it could be killed"
    logged = [r["step"] for r in read_curve(out / "curve.jsonl")]
    checkpointed = load_state(state)["step"]
    assert logged[-1] > checkpointed, "the kill should leave records beyond the checkpoint"
    with open(out / "curve.jsonl", "a") as f:
        f.write('{"run_id": "p/int4/0.1M/wd50/lr1x/seed5", "step": 9')  # killed mid-write
    subprocess.run(args, check=True)
    metrics = json.loads((out / "metrics.json").read_text())
    curve = read_curve(out / "curve.jsonl", metrics["run_id"])
    assert [r["step"] for r in curve] == list(range(1, 41))
    assert [r["train_loss"] for r in curve] == [e["train_loss"] for e in metrics["curve"]]
    assert [r["step"] for r in curve if "val_loss" in r] == [10, 20, 30, 40]


def test_tensorboard_events_hold_the_runs_losses(data_dir, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    m = train(data_dir, tmp_path, logging_cfg={"tensorboard": True})
    acc = EventAccumulator(str(RunFiles(RUN.id, tmp_path).tensorboard))
    acc.Reload()
    assert {"loss/train", "loss/val", "bpb/val", "throughput/tokens_per_s"} <= set(acc.Tags()["scalars"])
    train_events = acc.Scalars("loss/train")
    assert [e.step for e in train_events] == [e["step"] for e in m["curve"]]
    assert [e.value for e in train_events] == pytest.approx([e["train_loss"] for e in m["curve"]], rel=1e-6)
    assert acc.Scalars("loss/val")[-1].value == pytest.approx(m["final_val_loss"], rel=1e-6)
    assert acc.Scalars("bpb/val")[-1].value == pytest.approx(m["final_val_bpb"], rel=1e-6)


def test_tensorboard_is_off_by_default(data_dir, tmp_path):
    train(data_dir, tmp_path)
    assert not (RunFiles(RUN.id, tmp_path).tensorboard).exists()
