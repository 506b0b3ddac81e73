"""Warmdowns branched from one shared trunk: which runs share their past, and where each branches.

Runs equal but for their warmdown fraction (same phase, bits, size, LR, optimiser, schedule
shape, length, batch, init and data seeds) follow exactly the same trajectory until the
earliest of their warmdowns begins: same initial weights, same batches, same LR (warmup, then
constant), same optimiser state. Such a *group* trains its shared stable phase once, as a
*trunk*, and each member *branches* off it at its warmdown start (the step of its pre-warmdown
checkpoint) and trains its own warmdown to the end (Hägele et al. 2024; MiniCPM).

The trunk is trained in segments, in order of branch step: the segment of member k trains from
member k-1's branch step to member k's and saves the complete training state there (model,
every optimiser's state, step, curve, elapsed time). Member k's training job and segment k+1
both start from that state. The last member needs no segment of its own: its job starts from
the state of the member before and trains on through its own branch step to the end. A segment
follows its member's schedule, which up to the member's branch step is the same for every
member. On CPU every branched run is bitwise the run trained alone (tests/test_trunks.py).

Cost in run-lengths of a group with warmdowns w_i: (1 - min w) + sum w_i, against n trained
alone; the last member's result comes one run-length (plus a job start per segment) after
the first segment starts.

With `train.trunk_jobs: group` one job trains a whole group instead: each segment, then each
member's warmdown from its branch state, in one process (plan_groups). Same steps and results,
one job start per group instead of one per segment and run; the last member's result comes after
(1 - min w) + sum w_i run-lengths.

Torch-free: the Snakefile plans trunks when it parses.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from pathlib import Path

from .runs import RUN_ID_WILDCARD, Run
from .schedule import lr_batch_factor, run_batch_size, run_data_seed, total_steps, warmdown_start

PACKAGE = Path(__file__).resolve().parent
# Modules that never change what training computes: editing them keeps trunk states valid.
# A trunk's name is a member's run id with the warmdown level replaced by "trunk" (trunk_name).
TRUNK_NAME_WILDCARD = RUN_ID_WILDCARD.replace("/wd[0-9.]+/", "/trunk/")
NOT_TRAINING = ("plots", "stats.py", "aggregate.py", "audit.py", "status.py", "cli.py", "footprint.py", "probe.py")


def training_code_fingerprint() -> str:
    """sha256 over the package's training code, so a trunk state from another code version is never reused."""
    h = hashlib.sha256()
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE).as_posix()
        if not rel.startswith(NOT_TRAINING):
            h.update(rel.encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def group_key(run: Run) -> Run:
    """The run with its warmdown fraction blanked: runs with equal keys share a trunk."""
    return replace(run, warmdown_frac=-1.0)


def trunk_name(run: Run) -> str:
    """Readable id of a run's group: its run id with the warmdown level replaced by 'trunk'."""
    head, _, tail = run.id.partition("/wd")
    return f"{head}/trunk/{tail.partition('/')[2]}"


@dataclass(frozen=True)
class Branch:
    """A member of a shared trunk, branching at `step` (its warmdown start). With `segment`, a
    trunk segment (keyed by this run's id) trains from `previous`'s state (None: from
    initialisation) at `previous_step` up to `step`, and the run starts from the state it saves;
    without (the group's last member), the run starts from `previous`'s state itself."""

    run_id: str
    trunk: str
    step: int
    previous: str | None
    previous_step: int
    segment: bool = True

    @property
    def start(self) -> tuple[str, int]:
        """(run id whose trunk state this run starts from, that state's step)."""
        return (self.run_id, self.step) if self.segment else (self.previous, self.previous_step)


def ordered_groups(runs, train_cfg: dict) -> list[list[tuple[Run, int]]]:
    """The runs in groups (runs equal but for their warmdown; checked), each as (run, branch
    step) pairs in order of branch step, then run id."""
    groups: dict[Run, list[Run]] = {}
    for run in runs:
        groups.setdefault(group_key(run), []).append(run)
    ordered = []
    for members in groups.values():
        check_group(members, train_cfg)
        steps = {r.id: warmdown_start(total_steps(train_cfg, r), r.warmdown_frac) for r in members}
        ordered.append([(r, steps[r.id]) for r in sorted(members, key=lambda r: (steps[r.id], r.id))])
    return ordered


def plan_branches(runs, train_cfg: dict) -> dict[str, Branch]:
    """run id -> Branch, for every run that branches off a shared trunk. A run alone in its
    group (counting only warmdowns that start after step 0) trains alone and is not listed."""
    return branches_of(ordered_groups(runs, train_cfg))


def branches_of(ordered: list[list[tuple[Run, int]]]) -> dict[str, Branch]:
    """plan_branches of groups ordered by ordered_groups."""
    branches = {}
    for members in ordered:
        shared = [(run, step) for run, step in members if step > 0]
        if len(shared) < 2:
            continue
        previous, previous_step = None, 0
        for i, (run, step) in enumerate(shared):
            last = i == len(shared) - 1
            branches[run.id] = Branch(run.id, trunk_name(run), step, previous, previous_step, segment=not last)
            previous, previous_step = run.id, step
    return branches


def group_jobs(train_cfg: dict) -> bool:
    """Whether one job trains each group whole (train.trunk_jobs: group, with shared trunks)."""
    return train_cfg.get("shared_trunk", True) and train_cfg.get("trunk_jobs") == "group"


def plan_groups(runs, train_cfg: dict) -> dict[str, list[Run]]:
    """trunk name -> the runs of its group in order of branch step (a run alone in its group
    included): what one job of `train.trunk_jobs: group` trains."""
    return groups_of(ordered_groups(runs, train_cfg))


def groups_of(ordered: list[list[tuple[Run, int]]]) -> dict[str, list[Run]]:
    """plan_groups of groups ordered by ordered_groups."""
    return {trunk_name(members[0][0]): [run for run, _ in members] for members in ordered}


def check_group(members: list[Run], train_cfg: dict) -> None:
    """Members of a group must agree on everything that shapes the trunk (by construction they
    do; a change to the step arithmetic that broke it would otherwise branch from a wrong state)."""

    def shape(r: Run) -> tuple:
        return (total_steps(train_cfg, r), run_batch_size(train_cfg, r), lr_batch_factor(train_cfg, r),
                run_data_seed(r))  # fmt: skip

    shapes = {shape(r): r.id for r in members}
    if len(shapes) > 1:
        raise ValueError(
            "runs that differ only in warmdown disagree on steps, batch, LR factor or data seed, so they "
            f"cannot share a trunk: {', '.join(sorted(shapes.values()))}"
        )
