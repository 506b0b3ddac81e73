"""A failed job's reason lands in its log file (Snakemake points users there; on SLURM stderr goes
elsewhere), and `qatgrid status` shows it."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO, snakemake, workflow_copy

from qatgrid.logs import error_line, split_traceback
from qatgrid.status import main as status_main

ONE_CELL = """\
data: {vocab_size: 300}
train: {steps: 4, warmup_steps: 1, seq_len: 32, batch_size: 4, log_every: 2, eval_every: 2, eval_tokens: 256,
        checkpoint_every: 2}
analysis: {heldout_sizes: []}
sweeps:
  - {phase: phase2, bits: [16, 6], sizes: ["0.1M"], warmdown_fracs: [0.33], seeds: [0]}
audit:
  expected_runs: {phase2: 2, total: 2}
"""
RUN = "phase2/fp16/0.1M/wd33/lr1x/muon-linear-x1/seed0"
# The default config trains each shared trunk (here: each run, alone in its group) in one job,
# whose log is its group's (train.trunk_jobs: group).
JOB_LOG = "results/logs/groups/phase2/fp16/0.1M/trunk/lr1x/muon-linear-x1/seed0.log"


def test_every_workflow_script_logs_its_uncaught_exceptions():
    """Each script under workflow/scripts/ calls setup_logging, which installs the hook."""
    for script in sorted((REPO / "workflow" / "scripts").glob("*.py")):
        assert "setup_logging(snakemake.log[0])" in script.read_text(), script.name


def test_traceback_goes_to_the_log_and_to_stderr(tmp_path):
    log = tmp_path / "logs" / "job.log"
    code = (
        "import logging, sys; from qatgrid.logs import setup_logging; setup_logging(sys.argv[1]); "
        "logging.getLogger('qatgrid').info('working'); raise ValueError('data.vocab_size: 7 is too small')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(log)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    assert proc.returncode == 1
    text = log.read_text()
    assert "qatgrid INFO working" in text and "Traceback (most recent call last):" in text
    assert text.rstrip().endswith("ValueError: data.vocab_size: 7 is too small")
    assert "ValueError: data.vocab_size: 7 is too small" in proc.stderr
    assert error_line(text.splitlines()) == "ValueError: data.vocab_size: 7 is too small"


@pytest.mark.parametrize(
    "lines, expected",
    [
        ([], None),
        (["2026-01-01 10:00:00,000 qatgrid INFO step 10"], None),
        (
            [
                "2026-01-01 10:00:00,000 qatgrid INFO step 10",
                "Traceback (most recent call last):",
                '  File "x.py", line 1, in <module>',
                "    raise KeyError('a')",
                "KeyError: 'a'",
                "",
                "During handling of the above exception, another exception occurred:",
                "",
                "Traceback (most recent call last):",
                '  File "x.py", line 3, in <module>',
                "    raise ShardError(msg)",
                "    ^^^^^^^^^^^^^^^^^^^^^",
                "qatgrid.data.shards.ShardError: shard.bin: truncated",
                "second line of the message",
            ],
            "qatgrid.data.shards.ShardError: shard.bin: truncated",
        ),
        # a later attempt logged on after the traceback: it no longer says why the run stopped
        (["Traceback (most recent call last):", "ValueError: x", "2026-01-01 10:05:00,000 qatgrid INFO step 0"], None),
    ],
)
def test_error_line(lines, expected):
    assert error_line(lines) == expected
    before, error = split_traceback(lines)
    assert error == expected
    # what status shows above the error: the log up to the (chain of) traceback(s), else all of it
    assert before == (lines[:1] if expected else lines)


def test_a_failed_training_job_shows_its_exception_in_its_log_and_in_status(tmp_path, monkeypatch, capsys):
    """A corrupt shard fails the training job through Snakemake; its log holds the traceback and
    `qatgrid status` names the exception."""
    wf = workflow_copy(tmp_path)
    (wf / "one.yaml").write_text(ONE_CELL)
    snakemake(wf, "tokens", "--cores", "2", "--configfile", "one.yaml")  # targets first: --configfile takes a list
    shard = next((wf / "results" / "data").glob("*/train_000000.bin"))
    with open(shard, "r+b") as f:  # a torn copy: one byte short of what its header says
        f.truncate(shard.stat().st_size - 1)
    proc = snakemake(wf, f"results/runs/{RUN}/metrics.json", "--cores", "1", "--configfile", "one.yaml", check=False)
    assert proc.returncode != 0
    log = (wf / JOB_LOG).read_text()
    assert "Traceback (most recent call last):" in log
    err = error_line(log.splitlines())
    assert err.startswith("qatgrid.data.shards.ShardError: ") and "train_000000.bin" in err and "truncated" in err
    monkeypatch.chdir(wf)
    assert status_main(["--configfile", "one.yaml", "--log-lines", "1"]) == 0
    out = capsys.readouterr().out
    assert f"  {RUN}  stopped before its first logged step; no checkpoint; log {JOB_LOG}" in out
    assert f"    error: {err}" in out
    assert status_main(["--configfile", "one.yaml", "--json"]) == 0
    failed = json.loads(capsys.readouterr().out)["stopped"]
    assert [(f["run_id"], f["error"]) for f in failed] == [(RUN, err)]
