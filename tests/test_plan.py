"""The plan (qatgrid.plan): runs, branch points and jobs of each layout, on a hand-computed group."""

import pytest
from conftest import load_default_config, merged_config

from qatgrid.config import schema_defaults
from qatgrid.plan import build_plan
from qatgrid.runs import Run

TRAIN = {**schema_defaults("train"), "steps": 24, "batch_size": 4, "seq_len": 32}
# One group of three warmdowns (branch steps 24 - round(w * 24): 12, 18, 6) and a run alone in its group.
A, B, C = (Run("p", 6, "0.1M", w, 1.0, 0) for w in (0.5, 0.25, 0.75))
D = Run("p", 6, "0.16M", 0.5, 1.0, 0)
TRUNK = "p/int6/0.1M/trunk/lr1x/muon-linear-x1/seed0"


def plan(**train):
    return build_plan({"train": {**TRAIN, **train}}, [A, B, C, D])


def jobs(p) -> list[tuple[str, str, list[str]]]:
    return [(job.rule, job.name, [task.describe() for task in job.tasks]) for job in p.jobs]


def test_segments_layout_a_job_per_trunk_segment_and_per_run():
    p = plan(trunk_jobs="segments")
    assert p.layout == "segments" and p.steps == dict.fromkeys([A.id, B.id, C.id, D.id], 24)
    assert jobs(p) == [
        ("trunk", A.id, [f"segment {A.id} {C.id}@6->12"]),
        ("train", A.id, [f"member {A.id} {A.id}@12->24"]),
        ("train", B.id, [f"member {B.id} {A.id}@12->24"]),  # the last member: no segment of its own
        ("trunk", C.id, [f"segment {C.id} init->6"]),
        ("train", C.id, [f"member {C.id} {C.id}@6->24"]),
        ("train", D.id, [f"run {D.id} init->24"]),
    ]
    assert {r: (p.own_steps(r), p.segment_steps(r)) for r in p.steps} == {
        A.id: (12, 6),
        B.id: (12, 0),
        C.id: (18, 6),
        D.id: (24, 0),
    }
    assert p.jobs_charged() == {A.id: 2, B.id: 1, C.id: 2, D.id: 1}
    assert p.groups == {TRUNK: [C, A, B], D.id.replace("/wd50/", "/trunk/"): [D]}


def test_group_layout_one_job_per_group_in_order_of_branch_step():
    p = plan(trunk_jobs="group")
    assert jobs(p) == [
        (
            "train_group",
            TRUNK,
            [
                f"segment {C.id} init->6",
                f"member {C.id} {C.id}@6->24",
                f"segment {A.id} {C.id}@6->12",
                f"member {A.id} {A.id}@12->24",
                f"member {B.id} {A.id}@12->24",
            ],
        ),
        ("train_group", D.id.replace("/wd50/", "/trunk/"), [f"run {D.id} init->24"]),
    ]
    # (1 - min w) + sum w run-lengths: 0.75 + 1.5
    assert p.run_lengths(TRUNK) == pytest.approx(2.25) and p.group_jobs[TRUNK].steps == 54
    assert p.jobs_charged() == {A.id: 0, B.id: 0, C.id: 1, D.id: 1}
    assert p.group_of[B.id] == TRUNK


def test_alone_every_run_from_initialisation_whatever_trunk_jobs_says():
    for trunk_jobs in ("segments", "group"):
        p = plan(shared_trunk=False, trunk_jobs=trunk_jobs)
        assert p.layout == "alone" and p.branches == {}
        assert jobs(p) == [("train", r.id, [f"run {r.id} init->24"]) for r in (A, B, C, D)]
        assert p.jobs_charged() == dict.fromkeys(p.steps, 1)


@pytest.mark.parametrize("name", ["default", "paper"])
def test_every_layout_trains_every_step_of_every_run_once(name):
    """Whatever the packing, each run's steps are trained once: its own task plus the trunk
    segments its start state chains through add up to the whole run."""
    config = load_default_config() if name == "default" else merged_config("paper.yaml")
    for layout in ({"shared_trunk": False}, {"trunk_jobs": "segments"}, {"trunk_jobs": "group"}):
        p = build_plan({**config, "train": {**config["train"], "shared_trunk": True, **layout}})
        tasks = {(t.kind, t.run.id): t for job in p.jobs for t in job.tasks}
        for run in p.runs:
            task = tasks.get(("member", run.id)) or tasks[("run", run.id)]
            covered, start = task.steps, task.start
            while start is not None:
                segment = tasks[("segment", start)]
                covered, start = covered + segment.steps, segment.start
            assert covered == p.steps[run.id], run.id
