"""The plan: what a config trains and in which jobs, computed once from the merged config.

`build_plan(config)` gives the runs (qatgrid.runs.expand_runs), where each branches off a shared
trunk (qatgrid.trunks), and the training *jobs*, each an ordered list of *tasks*:
- a trunk segment: train a group's stable phase from a trunk state (or initialisation) to a
  member's branch step, and save the state there;
- a member: train a run from the trunk state it branches from to its end;
- a run: train a run from initialisation to its end.

How tasks are packed into jobs is the layout, chosen by two switches:
- `train.shared_trunk: false`: "alone", one job per run (a run task);
- `train.trunk_jobs: segments`: one job per trunk segment and one per run;
- `train.trunk_jobs: group`: one job per group, its segments and members in order of branch step.
No layout changes a CPU result (tests/test_trunks.py). The rules, the audit and `qatgrid status`
read this plan; nothing else decides which runs share what. Torch-free: the Snakefile builds it
when it parses.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from .runs import Run, expand_runs
from .schedule import total_steps
from .trunks import Branch, branches_of, group_jobs, groups_of, ordered_groups

LAYOUTS = ("alone", "segments", "group")
# `train` keys a training job does not take as they are: whether runs share trunks, and in which
# jobs, never changes a CPU result; the GPU's memory and the micro-batch setting act only through
# the count of micro-batches they decide for each run (job_train_section), so a GPU of another
# size reruns only the runs whose count changes.
NOT_JOB_PARAMS = ("shared_trunk", "trunk_jobs", "gpu_memory_gib", "micro_batches")


@dataclass(frozen=True)
class Task:
    """Train `run` from the state of `start` (a run id whose trunk state at `start_step` it
    continues; None: from initialisation at step 0) up to `end_step`. kind: segment | member | run."""

    kind: str
    run: Run
    start: str | None
    start_step: int
    end_step: int

    @property
    def steps(self) -> int:
        return self.end_step - self.start_step

    def as_dict(self) -> dict:
        """Plain values (a rule's params: Snakemake compares them by repr); from_dict reads them back."""
        return {"kind": self.kind, "run": self.run.as_dict(), "start": self.start, "start_step": self.start_step,
                "end_step": self.end_step}  # fmt: skip

    @classmethod
    def from_dict(cls, d: dict) -> Task:
        return cls(d["kind"], Run(**d["run"]), d["start"], d["start_step"], d["end_step"])

    def describe(self) -> str:
        origin = f"{self.start}@{self.start_step}" if self.start is not None else "init"
        return f"{self.kind} {self.run.id} {origin}->{self.end_step}"


@dataclass(frozen=True)
class Job:
    """One training job: `rule` (train | trunk | train_group) with its wildcard `name` (a run id,
    or a trunk name for a group), and its tasks in the order they run."""

    rule: str
    name: str
    tasks: tuple[Task, ...]

    @property
    def steps(self) -> int:
        return sum(task.steps for task in self.tasks)

    @property
    def key(self) -> tuple[str, str]:
        """(rule, wildcard): how a rule's job finds its Job in Plan.job."""
        return self.rule, self.name


@dataclass(frozen=True)
class Plan:
    layout: str
    runs: list[Run]
    steps: dict[str, int]  # run id -> optimiser steps of the whole run
    branches: dict[str, Branch]  # run id -> where it branches off its shared trunk (none when alone)
    groups: dict[str, list[Run]]  # trunk name -> the runs of its group in order of branch step
    jobs: list[Job]

    @cached_property
    def by_id(self) -> dict[str, Run]:
        return {run.id: run for run in self.runs}

    @cached_property
    def group_of(self) -> dict[str, str]:
        """run id -> the trunk name of its group."""
        return {run.id: trunk for trunk, members in self.groups.items() for run in members}

    @cached_property
    def job(self) -> dict[tuple[str, str], Job]:
        """(rule, wildcard) -> its job: what a training rule's job runs (qatgrid.train.run_job)."""
        return {job.key: job for job in self.jobs}

    @cached_property
    def group_jobs(self) -> dict[str, Job]:
        """With the group layout, trunk name -> the job that trains its group."""
        return {job.name: job for job in self.jobs if job.rule == "train_group"}

    def own_steps(self, run_id: str) -> int:
        """Steps the run's own task trains: from the state it starts from to its end."""
        branch = self.branches.get(run_id)
        return self.steps[run_id] - (branch.start[1] if branch is not None else 0)

    def segment_steps(self, run_id: str) -> int:
        """Steps of the trunk segment that ends at the run's branch step (0: it has none)."""
        branch = self.branches.get(run_id)
        return branch.step - branch.previous_step if branch is not None and branch.segment else 0

    def jobs_charged(self) -> dict[str, int]:
        """run id -> training jobs counted on it: its own and its segment's, or a group's on its first member."""
        counts = dict.fromkeys(self.steps, 0)
        for job in self.jobs:
            counts[job.tasks[0].run.id if job.rule == "train_group" else job.name] += 1
        return counts

    def run_lengths(self, trunk: str) -> float:
        """What the group layout's job of `trunk` trains, in lengths of one member's run: its trunk
        once plus every member's own part ((1 - min w) + sum w for warmdowns w)."""
        job = self.group_jobs[trunk]
        return job.steps / self.steps[job.tasks[0].run.id]


def run_task(run: Run, steps: int, branch: Branch | None) -> Task:
    if branch is None:
        return Task("run", run, None, 0, steps)
    start, start_step = branch.start
    return Task("member", run, start, start_step, steps)


def segment_task(run: Run, branch: Branch) -> Task:
    return Task("segment", run, branch.previous, branch.previous_step, branch.step)


def build_plan(config: dict, runs: list[Run] | None = None) -> Plan:
    """The plan of a merged config (qatgrid.config.load_config); `runs` if already expanded."""
    train = config["train"]
    runs = expand_runs(config) if runs is None else runs
    steps = {run.id: total_steps(train, run) for run in runs}
    ordered = ordered_groups(runs, train)
    groups = groups_of(ordered)
    layout = "alone" if not train["shared_trunk"] else "group" if group_jobs(train) else "segments"
    branches = branches_of(ordered) if layout != "alone" else {}
    jobs = []
    if layout == "group":
        for trunk, members in groups.items():
            tasks = []
            for run in members:
                branch = branches.get(run.id)
                if branch is not None and branch.segment:
                    tasks.append(segment_task(run, branch))
                tasks.append(run_task(run, steps[run.id], branch))
            jobs.append(Job("train_group", trunk, tuple(tasks)))
    else:
        for run in runs:
            branch = branches.get(run.id)
            if branch is not None and branch.segment:
                jobs.append(Job("trunk", run.id, (segment_task(run, branch),)))
            jobs.append(Job("train", run.id, (run_task(run, steps[run.id], branch),)))
    return Plan(layout, runs, steps, branches, groups, jobs)


def job_train_section(config: dict, runs: list[Run], train_config=None) -> dict:
    """The `train` section a training job of `runs` (a run, a trunk segment's run, or a group's
    members) trains with, and so its rerun trigger: the config's less NOT_JOB_PARAMS, with
    `micro_batches` the count the runs' plans decide (qatgrid.config.TrainConfig.plan, which
    training reads back from this fixed count). Raises ValueError, naming the size, when no count
    fits the GPU. `train_config`: the config's TrainConfig, if already built."""
    from .config import TrainConfig

    tc = train_config if train_config is not None else TrainConfig.from_config(config)
    counts = {tc.plan(run).micro_batches for run in runs}
    if len(counts) != 1:  # members of a group differ only in their warmdown, which the count ignores
        raise ValueError(f"runs {[r.id for r in runs]} of one training job plan different micro-batches {counts}")
    section = {key: value for key, value in config["train"].items() if key not in NOT_JOB_PARAMS}
    return {**section, "micro_batches": counts.pop()}
