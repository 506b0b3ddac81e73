"""Warmdowns branched from a shared trunk give, on CPU, bitwise what each run gives trained alone:
metrics, curve, both checkpoints and the probe. Any slip (a branch one step early or late, an
optimiser buffer or the momentum warm-up lost at the branch, a wrong data position) changes
losses in the last digits and fails these comparisons."""

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import small_train
from test_train import data_dir, kill_once_checkpointed  # noqa: F401 (data_dir: a fixture, the shared tiny corpus)

from qatgrid.checkpoint import clear_state, load_checkpoint
from qatgrid.plan import build_plan
from qatgrid.probe import probe_checkpoint
from qatgrid.runfiles import GroupFiles, RunFiles, TrunkFiles
from qatgrid.runs import Run, expand_runs
from qatgrid.train import run_job, train_run
from qatgrid.trunks import plan_branches, plan_groups, trunk_name

TRAIN = small_train(
    steps=24,
    warmup_steps=3,
    # momentum still warming up at every branch step: its schedule must continue across the branch
    muon_momentum={"warmup_steps": 40},
    log_every=2,
    eval_every=6,
    eval_tokens=1024,
    checkpoint_every=5,
)
TIMING = {"wall_seconds", "trunk", "trunk_seconds", "scheduler"}
RECORD_TIMING = {"tokens_per_s", "elapsed_s", "eta_s", "time"}


def group(warmdowns, **axes) -> list[Run]:
    base = {"phase": "p", "bits": 6, "size": "0.1M", "lr_mult": 1.0, "seed": 0, **axes}
    return [Run(warmdown_frac=w, **base) for w in warmdowns]


def train_alone(runs, data_dir, results, train=TRAIN):
    for run in runs:
        train_run(run, {"train": train}, data_dir, RunFiles(run.id, results))


def train_branched(runs, data_dir, results, train=TRAIN):
    """As the workflow runs the jobs of train.trunk_jobs: segments: each trunk segment's job in
    branch order, then each member's job from its state."""
    plan = build_plan({"train": {**train, "trunk_jobs": "segments"}}, runs)
    segments = sorted((job for job in plan.jobs if job.rule == "trunk"), key=lambda job: job.tasks[0].end_step)
    for job in segments + [job for job in plan.jobs if job.rule == "train"]:
        run_job(job, {"train": train}, data_dir, results)
    return plan.branches


def tensors_equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def assert_same_outputs(alone: RunFiles, branched: RunFiles) -> None:
    ma, mb = (json.loads(f.metrics.read_text()) for f in (alone, branched))
    assert {k: v for k, v in ma.items() if k not in TIMING} == {k: v for k, v in mb.items() if k not in TIMING}
    ca, cb = ([{k: v for k, v in json.loads(line).items() if k not in RECORD_TIMING}
               for line in f.curve.read_text().splitlines()] for f in (alone, branched))  # fmt: skip
    assert ca == cb
    for name in ("ckpt_prewarmdown", "ckpt_final"):
        wa, wb = (torch.load(getattr(f, name), weights_only=True) for f in (alone, branched))
        assert tensors_equal(wa["model"], wb["model"]), name
        assert {k: v for k, v in wa.items() if k != "model"} == {k: v for k, v in wb.items() if k != "model"}
    assert probe_checkpoint(str(alone.ckpt_prewarmdown)) == probe_checkpoint(str(branched.ckpt_prewarmdown))


GROUPS = {
    "muon-linear-int6": group([0.1, 0.25, 0.5]),
    "adamw-cosine-int4-x2": group([0.2, 0.5], bits=4, optimizer="adamw", schedule="cosine", length_mult=2),
    "ternary-batch-data-seed": group([0.33, 0.5], bits=1, batch_size=2, data_seed=1, seed=3),
    "int8-and-int2-lr": group([0.1, 0.33], bits=8, lr_mult=0.5) + group([0.1, 0.33], bits=2, seed=1),
    "fp16-int3": group([0.2, 0.33], bits=16) + group([0.2, 0.33], bits=3),
}


@pytest.mark.parametrize("name", GROUPS)
def test_branched_runs_are_bitwise_the_runs_trained_alone(name, data_dir, tmp_path):
    runs = GROUPS[name]
    train_alone(runs, data_dir, tmp_path / "alone")
    branches = train_branched(runs, data_dir, tmp_path / "branched")
    assert set(branches) == {r.id for r in runs}  # every run here shares a trunk
    for run in runs:
        branched = RunFiles(run.id, tmp_path / "branched")
        assert_same_outputs(RunFiles(run.id, tmp_path / "alone"), branched)
        metrics = json.loads(branched.metrics.read_text())
        assert metrics["trunk"] == trunk_name(run) and metrics["trunk_seconds"] > 0
        assert metrics["trunk_seconds"] < metrics["wall_seconds"]
        assert metrics["steps_done"] == metrics["steps"]
    # Each member's own job trains only its warmdown; the trunk trains the rest, once.
    plan, steps = build_plan({"train": {**TRAIN, "trunk_jobs": "segments"}}, runs), {}
    assert plan.branches == branches
    for r in runs:
        steps[r.id] = json.loads(RunFiles(r.id, tmp_path / "alone").metrics.read_text())["steps"]
        assert plan.own_steps(r.id) == steps[r.id] - branches[r.id].start[1]
    assert sum(plan.own_steps(r.id) + plan.segment_steps(r.id) for r in runs) < sum(steps.values())


def move_staged(run_id: str, group: GroupFiles) -> None:
    """What rule run_outputs does: rename the run's staged outputs into place, metrics last."""
    staged_files, final_files = group.member(run_id).outputs(), RunFiles(run_id, group.results).outputs()
    for staged, final in zip(staged_files.values(), final_files.values()):
        Path(final).parent.mkdir(parents=True, exist_ok=True)
        Path(staged).replace(final)


def train_in_group_jobs(runs, data_dir, results, train=TRAIN) -> dict[str, list[str]]:
    """As the workflow runs them with train.trunk_jobs: group: one job per group, then each
    member's own job moves its staged outputs in place. Returns each group's trained members."""
    trained = {}
    for job in build_plan({"train": {**train, "trunk_jobs": "group"}}, runs).jobs:
        trained[job.name] = run_job(job, {"train": train}, data_dir, results)
        for task in job.tasks:
            if task.kind != "segment":
                move_staged(task.run.id, GroupFiles(job.name, results))
    return trained


@pytest.mark.parametrize("name", ["muon-linear-int6", "int8-and-int2-lr"])
def test_one_job_per_group_gives_bitwise_the_runs_trained_alone(name, data_dir, tmp_path):
    runs = GROUPS[name]
    train_alone(runs, data_dir, tmp_path / "alone")
    trained = train_in_group_jobs(runs, data_dir, tmp_path / "grouped")
    assert sorted(trained) == sorted({trunk_name(r) for r in runs})
    assert sorted(i for ids in trained.values() for i in ids) == sorted(r.id for r in runs)
    for run in runs:
        grouped = RunFiles(run.id, tmp_path / "grouped")
        assert_same_outputs(RunFiles(run.id, tmp_path / "alone"), grouped)
        assert json.loads(grouped.metrics.read_text())["trunk"] == trunk_name(run)
        assert not TrunkFiles(run.id, tmp_path / "grouped").branch_state.exists()  # removed once used
        assert not list(RunFiles(run.id, tmp_path / "grouped").state_dir.glob("*.pt"))
    for trunk in trained:
        done = json.loads(GroupFiles(trunk, tmp_path / "grouped").done.read_text())
        assert done["members"] == [r.id for r in plan_groups(runs, TRAIN)[trunk]]
    # Runs in branch order; the job trains (1 - min w) + sum w run-lengths: 0.9 + 0.85 here.
    order = [r.warmdown_frac for r in plan_groups(runs, TRAIN)[trunk_name(runs[0])]]
    assert order == sorted(order, reverse=True)
    if name == "muon-linear-int6":
        assert build_plan({"train": TRAIN}, runs).run_lengths(trunk) == pytest.approx((24 - 12 + 24 - 18 + 24) / 24)


def test_a_group_job_keeps_what_it_staged_and_retrains_what_is_in_place(data_dir, tmp_path):
    """Rerun after an attempt that staged some members' outputs (an interrupted job), a group's
    job trains only the others, and the trunk only as far as they need it: bitwise those trained
    alone. Rerun over members whose outputs are in place (Snakemake reruns it only when they are
    stale), it trains them all, so that each member's own job has outputs to move; so it does
    over outputs staged with other settings."""
    runs = GROUPS["muon-linear-int6"]
    results = tmp_path / "grouped"
    train_alone(runs, data_dir, tmp_path / "alone")
    job = build_plan({"train": TRAIN}, runs).jobs[0]
    assert job.rule == "train_group" and [t.kind for t in job.tasks] == ["segment", "member"] * 2 + ["member"]
    members = [t.run for t in job.tasks if t.kind != "segment"]
    group = GroupFiles(job.name, results)
    assert run_job(job, {"train": TRAIN}, data_dir, results) == [r.id for r in members]
    for run in (members[0], members[-1]):  # as if the job stopped with only wd25 staged
        for path in group.member(run.id).outputs().values():
            Path(path).unlink()
    assert run_job(job, {"train": TRAIN}, data_dir, results) == [members[0].id, members[-1].id]
    for run in members:
        move_staged(run.id, group)
        assert_same_outputs(RunFiles(run.id, tmp_path / "alone"), RunFiles(run.id, results))
    group.done.unlink()  # temp(): Snakemake deletes it once every member's job moved its outputs
    assert run_job(job, {"train": TRAIN}, data_dir, results) == [r.id for r in members]
    assert json.loads(group.done.read_text())["trained"] == [r.id for r in members]
    # Outputs staged with other settings (left by members whose own jobs never moved them) are
    # not kept; those staged with the same are.
    other = {**TRAIN, "grad_clip": 0.5}
    assert run_job(job, {"train": other}, data_dir, results) == [r.id for r in members]
    assert run_job(job, {"train": other}, data_dir, results) == []


def test_branch_starts_at_the_members_warmdown_start(data_dir, tmp_path, caplog):
    caplog.set_level("INFO", logger="qatgrid.train")
    runs = group([0.25, 0.5])
    branches = train_branched(runs, data_dir, tmp_path)
    assert {r.id: branches[r.id].step for r in runs} == {runs[0].id: 18, runs[1].id: 12}
    # wd50 branches first, off the one trunk segment (steps 0-12); wd25, the last member, starts
    # from that state too and trains on through its own branch step
    assert not branches[runs[0].id].segment and branches[runs[1].id].segment
    assert f"{runs[1].id} branches off its trunk at step 12" in caplog.text
    assert f"{runs[0].id} branches off its trunk at step 12" in caplog.text
    # the trunk state holds exactly the shared prefix of the curve
    state = load_checkpoint(TrunkFiles(runs[1].id, tmp_path).branch_state)
    assert state["step"] == 12 and state["prewarmdown"] is None
    assert [e["step"] for e in state["curve"]] == list(range(2, 13, 2))
    assert not TrunkFiles(runs[0].id, tmp_path).branch_state.exists()


def test_a_diverging_trunk_marks_its_later_members_diverged_as_alone(data_dir, tmp_path, caplog):
    """The trunk diverges before every branch step: each member ends diverged, with the same
    metrics and checkpoints as the same run diverging alone; the trunk says so once."""
    train = {**TRAIN, "diverge_loss": 0.5}
    runs = group([0.25, 0.5])
    train_alone(runs, data_dir, tmp_path / "alone", train)
    train_branched(runs, data_dir, tmp_path / "branched", train)
    for run in runs:
        assert_same_outputs(RunFiles(run.id, tmp_path / "alone"), RunFiles(run.id, tmp_path / "branched"))
        m = json.loads(RunFiles(run.id, tmp_path / "branched").metrics.read_text())
        assert m["diverged"] and m["steps_done"] == 2 and m["final_val_loss"] is None
    assert caplog.text.count("diverged at step 2 (train loss") == 1 + len(runs)  # the trunk once, each run alone


@pytest.mark.parametrize("damage", ["missing", "truncated", "other-config"])
def test_a_bad_trunk_state_is_named_and_the_trunk_part_retrained(damage, data_dir, tmp_path, caplog):
    runs = group([0.25, 0.5])
    train_alone(runs[:1], data_dir, tmp_path / "alone")
    branches = train_branched(runs, data_dir, tmp_path / "branched", {**TRAIN, "grad_clip": 0.5})
    assert branches
    state = TrunkFiles(branches[runs[0].id].start[0], tmp_path / "branched").branch_state
    files = RunFiles(runs[0].id, tmp_path / "branched")
    for path in (files.metrics, files.ckpt_final, files.ckpt_prewarmdown, files.curve):
        path.unlink()
    clear_state(files.state_dir)  # as the workflow does once a run's outputs are written
    if damage == "missing":
        state.unlink()
    elif damage == "truncated":
        state.write_bytes(state.read_bytes()[:1000])
    # "other-config": the state was trained with grad_clip 0.5, the rerun uses TRAIN's 1.0
    train_run(runs[0], {"train": TRAIN}, data_dir, files, branch=state)
    reason = {"missing": "is missing", "truncated": "fails its checksum", "other-config": "was made for another"}[
        damage
    ]
    assert f"trunk state {state} {reason}" in caplog.text and "retraining the trunk part from step 0" in caplog.text
    assert_same_outputs(RunFiles(runs[0].id, tmp_path / "alone"), files)
    assert json.loads(files.metrics.read_text())["trunk"] is None


def test_members_that_disagree_beyond_the_warmdown_are_rejected_naming_them():
    from qatgrid import trunks

    runs = group([0.25, 0.5])
    real = trunks.total_steps
    trunks.total_steps = lambda cfg, r: 30 if r.warmdown_frac == 0.5 else real(cfg, r)
    try:
        with pytest.raises(ValueError, match=r"cannot share a trunk: p/int6/0\.1M/wd25/.*, p/int6/0\.1M/wd50/"):
            plan_branches(runs, TRAIN)
    finally:
        trunks.total_steps = real


def test_the_default_and_paper_grids_branch_every_group():
    """Every run of the paper grid sits in a group of two or more warmdowns (the saving the audit reports)."""
    from conftest import merged_config

    paper = merged_config("paper.yaml")
    runs = expand_runs(paper)
    branches = plan_branches(runs, paper["train"])
    assert len(branches) == len(runs) == 1345
    assert len({b.trunk for b in branches.values()}) == 395


KILL_SCRIPT = """
import json, sys
from pathlib import Path
from qatgrid.runs import Run
from qatgrid.plan import Job, Task
from qatgrid.train import run_job
cfg, data_dir, results, what = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
run, branch_step = Run("p", 4, "0.1M", float(sys.argv[5]), 1.0, 5), int(sys.argv[6])
if what == "trunk":  # the segment that ends at the run's branch step, and the run from there
    job = Job("trunk", run.id, (Task("segment", run, None, 0, branch_step),))
else:
    job = Job("train", run.id, (Task("member", run, run.id, branch_step, cfg["steps"]),))
run_job(job, {"train": cfg}, data_dir, results)
"""


@pytest.mark.parametrize("what", ["trunk", "branch"])
def test_sigkill_mid_trunk_or_mid_branch_then_rerun_is_bitwise_identical(what, data_dir, tmp_path):
    """A SIGKILL at a random step of a trunk segment (wd10's, steps 0-54) or of a branch (wd50's
    warmdown, steps 30-60); the rerun resumes from the last periodic checkpoint and the run's
    outputs are bitwise those of the run trained alone."""
    cfg = {**TRAIN, "steps": 60, "checkpoint_every": 3}
    warmdown, branch_step = (0.1, 54) if what == "trunk" else (0.5, 30)
    run = Run("p", 4, "0.1M", warmdown, 1.0, 5)
    train_alone([run], data_dir, tmp_path / "alone", cfg)
    results = tmp_path / "branched"
    args = [sys.executable, "-c", KILL_SCRIPT, json.dumps(cfg), data_dir, str(results)]
    trunk_args, branch_args = ([*args, what, str(warmdown), str(branch_step)] for what in ("trunk", "branch"))
    if what == "branch":  # the trunk segment first, whole; the kill lands in the branch's warmdown
        subprocess.run(trunk_args, check=True)
    state_dir = (TrunkFiles(run.id, results) if what == "trunk" else RunFiles(run.id, results)).state_dir
    lo, hi = (branch_step - 50, branch_step - 6) if what == "trunk" else (branch_step + 3, 54)
    target = random.Random().randint(max(lo, 3), hi)
    proc = subprocess.Popen(trunk_args if what == "trunk" else branch_args)
    killed_at = kill_once_checkpointed(proc, state_dir, target, f"the {what}")
    assert (0 < killed_at < branch_step) if what == "trunk" else (branch_step < killed_at < 60)
    if what == "trunk":
        subprocess.run(trunk_args, check=True)
    subprocess.run(branch_args, check=True)
    assert_same_outputs(RunFiles(run.id, tmp_path / "alone"), RunFiles(run.id, results))


GROUP_KILL_SCRIPT = """
import json, sys
from pathlib import Path
from qatgrid.runs import Run
from qatgrid.plan import build_plan
from qatgrid.train import run_job
cfg, data_dir, results = json.loads(sys.argv[1]), sys.argv[2], Path(sys.argv[3])
members = [Run("p", 4, "0.1M", 0.5, 1.0, 5), Run("p", 4, "0.1M", 0.1, 1.0, 5)]
job, = build_plan({"train": {**cfg, "trunk_jobs": "group"}}, members).jobs
print(json.dumps(run_job(job, {"train": cfg}, data_dir, results)))
"""


@pytest.mark.parametrize("where", ["segment", "first member", "last member"])
def test_sigkill_mid_group_job_then_rerun_is_bitwise_identical(where, data_dir, tmp_path):
    """A group job (wd50 and wd10 of 60-step runs: the segment to step 30, wd50's warmdown from its
    state, then wd10 on from the same state) SIGKILLed at a random step of one of its parts; the
    rerun resumes that part from its last checkpoint, keeps what was finished, and both runs are
    bitwise those trained alone."""
    cfg = {**TRAIN, "steps": 60, "checkpoint_every": 3}
    members = [Run("p", 4, "0.1M", 0.5, 1.0, 5), Run("p", 4, "0.1M", 0.1, 1.0, 5)]
    train_alone(members, data_dir, tmp_path / "alone", cfg)
    results = tmp_path / "grouped"
    args = [sys.executable, "-c", GROUP_KILL_SCRIPT, json.dumps(cfg), data_dir, str(results)]
    state_dir, (lo, hi) = {
        "segment": (TrunkFiles(members[0].id, results).state_dir, (3, 24)),
        "first member": (RunFiles(members[0].id, results).state_dir, (33, 54)),
        "last member": (RunFiles(members[1].id, results).state_dir, (33, 54)),
    }[where]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE)
    killed_at = kill_once_checkpointed(proc, state_dir, random.Random().randint(lo, hi), f"the group job ({where})")
    assert lo <= killed_at < 60
    trained = json.loads(subprocess.run(args, check=True, capture_output=True, text=True).stdout)
    assert trained == ([members[1].id] if where == "last member" else [m.id for m in members])
    group = GroupFiles(trunk_name(members[0]), results)
    for run in members:
        move_staged(run.id, group)
        assert_same_outputs(RunFiles(run.id, tmp_path / "alone"), RunFiles(run.id, results))


def paper_config(shared: bool) -> dict:
    from conftest import merged_config

    cfg = merged_config("paper.yaml")
    cfg["train"]["shared_trunk"] = shared
    return cfg


def test_the_audit_plans_trunks_and_counts_each_trunk_step_once():
    """Paper grid, one audit each way: shared trunks estimate at most 0.60x the GPU-hours of every
    run alone, with one trunk segment job per run; the 'alone' column is the unshared audit's."""
    from qatgrid.audit import grid_table, sharing_note

    shared, alone = grid_table(paper_config(True), None), grid_table(paper_config(False), None)
    ratio = shared["est_gpu_hours"].sum() / alone["est_gpu_hours"].sum()
    assert 0.5 < ratio <= 0.60
    assert shared["est_gpu_hours_alone"].sum() == pytest.approx(alone["est_gpu_hours"].sum())
    assert (shared["jobs"].sum(), alone["jobs"].sum()) == (2 * 1345 - 395, 1345)
    assert alone["trunk"].isna().all() and shared["trunk"].nunique() == 395
    # hand count of one Phase 2 group (wd10/20/33/50 of 4000-step runs): 3600 + 400 + 800 + 1320 + 2000 steps
    group = shared[shared["trunk"] == "phase2/int6/15M/trunk/lr1x/muon-linear-x1/seed0"]
    steps = int(group["steps"].iloc[0])
    assert (group["own_steps"] + group["trunk_steps"]).sum() == round(steps * (1 - 0.1 + 0.1 + 0.2 + 0.33 + 0.5))
    note = sharing_note(paper_config(True), shared)
    assert "395 trunks serve 1345 runs" in note and f"({ratio:.2f}x)" in note and "2,295 training jobs" in note


def test_the_audit_counts_one_job_per_group_with_group_jobs():
    """train.trunk_jobs: group: the same steps and GPU-hours, one training job per group (395 on
    the paper grid), counted on the group's first member."""
    from qatgrid.audit import grid_table, sharing_note

    cfg = paper_config(True)
    segments = grid_table(cfg, None)
    cfg["train"]["trunk_jobs"] = "group"
    grouped = grid_table(cfg, None)
    assert grouped["jobs"].sum() == 395 and set(grouped["jobs"]) == {0, 1}
    assert (grouped["own_steps"] + grouped["trunk_steps"]).sum() == (
        segments["own_steps"] + segments["trunk_steps"]
    ).sum()
    first = {members[0].id for members in plan_groups(expand_runs(cfg), cfg["train"]).values()}
    assert set(grouped.loc[grouped["jobs"] == 1, "run_id"]) == first
    assert "395 training jobs (one per group) against 1,345" in sharing_note(cfg, grouped)


def test_status_names_the_group_log_of_a_failed_run_with_group_jobs(tmp_path):
    """A group's job that failed: status shows each of its unfinished runs failed, with that job's
    log and its error."""
    from conftest import load_default_config

    from qatgrid.status import grid_status

    cfg = load_default_config()
    assert cfg["train"]["trunk_jobs"] == "group"
    run = next(r for r in expand_runs(cfg) if r.phase == "phase2")
    files, log = RunFiles(run.id, tmp_path), GroupFiles(trunk_name(run), tmp_path).log
    files.curve.parent.mkdir(parents=True)
    files.curve.write_text(json.dumps({"run_id": run.id, "step": 40, "steps": 100, "time": 0.0}) + "\n")
    log.parent.mkdir(parents=True)
    log.write_text('Traceback (most recent call last):\n  File "x.py", line 1\nRuntimeError: out of memory\n')
    failed = grid_status(cfg, tmp_path, running_minutes=0.0)["stopped"]
    # the job failed: its run in flight, and the runs it had still to train
    members = sorted(r.id for r in expand_runs(cfg) if trunk_name(r) == trunk_name(run))
    assert len(members) == 4 and sorted(f["run_id"] for f in failed) == members
    assert {(f["log"], f["error"]) for f in failed} == {(str(log), "RuntimeError: out of memory")}
    assert [f["step"] for f in failed if f["run_id"] == run.id] == [40]


def test_status_counts_gpu_hours_of_a_shared_trunk_once(tmp_path):
    from conftest import load_default_config

    from qatgrid.io import write_json
    from qatgrid.status import grid_status

    cfg = load_default_config()
    runs = [r for r in expand_runs(cfg) if r.phase == "phase2" and r.bits == 6 and r.size == "0.1M" and r.seed == 0]
    assert len(runs) == 4
    trunk = trunk_name(runs[0])
    for i, run in enumerate(runs):  # each 100 s alone, of which the trunk trained 10*i s ... 30 s
        write_json(RunFiles(run.id, tmp_path).metrics,
                   {"run_id": run.id, "diverged": False, "wall_seconds": 100.0, "trunk": trunk,
                    "trunk_seconds": 10.0 * (i + 1)})  # fmt: skip
    spent = grid_status(cfg, tmp_path)["gpu_hours"]["spent"] * 3600
    assert spent == pytest.approx(sum(100.0 - 10.0 * (i + 1) for i in range(4)) + 40.0)


def test_status_shows_a_trunk_in_flight(tmp_path):
    from conftest import load_default_config

    from qatgrid.status import format_status, grid_status

    cfg = load_default_config()
    branches = plan_branches(expand_runs(cfg), cfg["train"])
    b = next(b for b in branches.values() if b.previous is not None and b.segment)
    curve = TrunkFiles(b.run_id, tmp_path).curve
    curve.parent.mkdir(parents=True)
    curve.write_text(json.dumps({"run_id": b.run_id, "step": b.previous_step + 1, "train_loss": 4.25}) + "\n")
    s = grid_status(cfg, tmp_path)
    assert [(t["trunk"], t["step"], t["to_step"]) for t in s["trunks_running"]] == [
        (b.trunk, b.previous_step + 1, b.step)
    ]
    assert f"Shared trunks running (1):\n  {b.trunk}  step {b.previous_step + 1}, segment" in format_status(s)


def test_the_switches_plan_group_jobs_segments_or_none(tmp_path):
    """Dry-runs of the default grid. train.trunk_jobs: group (the default config's): one training
    job per group and a local job per run that moves its outputs in place; segments: one trunk
    segment job per run but the last of each group, and a training job per run;
    train.shared_trunk: false: a training job per run and nothing else."""
    import re
    from collections import Counter

    from conftest import load_default_config, snakemake, workflow_copy

    from qatgrid.config import load_config

    wf = workflow_copy(tmp_path)
    (wf / "segments.yaml").write_text("train: {trunk_jobs: segments}\n")
    (wf / "off.yaml").write_text("train: {shared_trunk: false}\n")
    cfg = load_default_config()
    runs = expand_runs(cfg)
    branches = plan_branches(runs, cfg["train"])
    segments = sum(b.segment for b in branches.values())
    expected = {
        (): {"train_group": len(plan_groups(runs, cfg["train"])), "run_outputs": len(runs)},
        ("--configfile", "segments.yaml"): {"train": len(runs), "trunk": segments},
        ("--configfile", "off.yaml"): {"train": len(runs)},
    }
    for args, counts in expected.items():
        plan = build_plan(load_config([wf / args[1]] if args else []))  # the plan the rules read
        planned = Counter(job.rule for job in plan.jobs)
        assert planned == {k: v for k, v in counts.items() if k != "run_outputs"}, args
        out = snakemake(wf, "-n", "--quiet", "rules", *args).stdout
        jobs = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
        assert {rule: jobs.get(rule, 0) for rule in ("train_group", "run_outputs", "train", "trunk")} == {
            "train_group": 0, "run_outputs": 0, "train": 0, "trunk": 0, **counts
        }, args  # fmt: skip
    assert cfg["train"]["trunk_jobs"] == "group" and len(plan_groups(runs, cfg["train"])) == 35
    assert segments == 51  # 86 runs in 35 groups, 27 of them shared


GROUP_GRID = """\
data: {vocab_size: 300}
train: {steps: 12, warmup_steps: 2, seq_len: 32, batch_size: 4, log_every: 4, eval_every: 6, eval_tokens: 512,
        checkpoint_every: 6}
analysis: {heldout_sizes: []}
sweeps:
  - {phase: phase2, bits: [16, 6], sizes: ["0.1M"], warmdown_fracs: [0.25, 0.5], seeds: [0]}
audit:
  expected_runs: {phase2: 4, total: 4}
"""


def test_a_group_job_rerun_over_finished_runs_retrains_and_keeps_every_member(tmp_path):
    """train.trunk_jobs: group. A changed training parameter reruns a finished group's job: it must
    retrain every member (their outputs in place are stale), so that each member's own job has
    outputs to move; none may fail and lose its run's metrics or probe."""
    from conftest import snakemake, workflow_copy

    from qatgrid.config import load_config

    wf = workflow_copy(tmp_path)
    (wf / "grid.yaml").write_text(GROUP_GRID)
    (wf / "eval.yaml").write_text("train: {eval_tokens: 1024}\n")
    plan = build_plan(load_config([wf / "grid.yaml"]))
    assert plan.layout == "group" and [[t.kind for t in job.tasks] for job in plan.jobs] == 2 * [
        ["segment", "member", "member"]
    ]
    probes = [str(RunFiles(run.id).probe) for run in plan.runs]
    snakemake(wf, *probes, "--cores", "1", "--configfile", "grid.yaml")
    before = {run.id: json.loads((wf / RunFiles(run.id).metrics).read_text()) for run in plan.runs}
    proc = snakemake(wf, *probes, "--cores", "1", "--configfile", "grid.yaml", "eval.yaml", check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for run in plan.runs:
        files = RunFiles(run.id)
        assert (wf / files.probe).exists() and (wf / files.metrics).exists(), run.id
        after = json.loads((wf / files.metrics).read_text())
        assert after["run_id"] == run.id and after["final_val_loss"] != before[run.id]["final_val_loss"]
        staged = GroupFiles(trunk_name(run)).member(run.id).outputs().values()
        assert not any((wf / path).exists() for path in staged)  # every one moved in place
    assert "Nothing to be done" in snakemake(wf, *probes, "-n", "--configfile", "grid.yaml", "eval.yaml").stdout
