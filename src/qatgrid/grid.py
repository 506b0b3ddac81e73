"""The one place where a config becomes a list of training runs.

The Snakefile, the audit and the tests all call `expand_runs`; nothing else
enumerates the grid. A run's id is a readable path, produced by `run_id` and
read back by `parse_run_id`, e.g. ``phase2/int6/15M/wd33/lr1x/muon-linear-x1/seed0``.
"""
from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass

# Axis name in a sweep -> field of Run. Each sweep is the cartesian product of
# its axes; a missing axis takes the default below.
AXES = ("bits", "size", "warmdown_frac", "lr_mult", "seed", "optimizer", "schedule", "length_mult")
SWEEP_KEYS = {
    "bits": "bits", "sizes": "size", "warmdown_fracs": "warmdown_frac", "lr_mults": "lr_mult",
    "seeds": "seed", "optimizers": "optimizer", "schedules": "schedule", "length_mults": "length_mult",
}
SWEEP_DEFAULTS = {"lr_mults": [1.0], "optimizers": ["muon"], "schedules": ["linear"], "length_mults": [1]}


@dataclass(frozen=True, order=True)
class Run:
    phase: str
    bits: int
    size: str
    warmdown_frac: float
    lr_mult: float
    seed: int
    optimizer: str = "muon"
    schedule: str = "linear"
    length_mult: float = 1

    @property
    def id(self) -> str:
        return run_id(self)

    def as_dict(self) -> dict:
        return asdict(self)


def _num(x: float) -> str:
    """Shortest decimal that reads back to the same float: 1.0 -> '1', 0.125 -> '0.125'."""
    return f"{float(x):g}"


def bits_label(bits: int) -> str:
    return {16: "fp16", 1: "ternary"}.get(int(bits), f"int{int(bits)}")


def run_id(run: Run) -> str:
    wd = _num(round(run.warmdown_frac * 100, 6))
    return (f"{run.phase}/{bits_label(run.bits)}/{run.size}/wd{wd}/lr{_num(run.lr_mult)}x/"
            f"{run.optimizer}-{run.schedule}-x{_num(run.length_mult)}/seed{run.seed}")


# What Snakemake's {run} wildcard may match (rules/common.smk); parse_run_id is stricter.
RUN_ID_WILDCARD = r"[A-Za-z0-9_.-]+/(?:fp16|int\d+)/[0-9.]+[KMB]/wd[0-9.]+/lr[0-9.]+x/[a-z]+-[a-z]+-x[0-9.]+/seed\d+"

_RUN_ID = re.compile(
    r"^(?P<phase>[A-Za-z0-9_.-]+)/(?:fp(?P<fp>16)|int(?P<int>\d+))/(?P<size>[0-9.]+[KMB])/"
    r"wd(?P<wd>[0-9.]+)/lr(?P<lr>[0-9.]+)x/(?P<opt>[a-z]+)-(?P<sched>[a-z]+)-x(?P<len>[0-9.]+)/"
    r"seed(?P<seed>\d+)$")


def parse_run_id(text: str) -> Run:
    m = _RUN_ID.match(text)
    if not m:
        raise ValueError(f"not a run id: {text!r} (expected e.g. 'phase2/int6/15M/wd33/lr1x/muon-linear-x1/seed0')")
    g = m.groupdict()
    length = float(g["len"])
    return Run(phase=g["phase"], bits=16 if g["fp"] else int(g["int"]), size=g["size"],
               warmdown_frac=round(float(g["wd"]) / 100, 8), lr_mult=float(g["lr"]), seed=int(g["seed"]),
               optimizer=g["opt"], schedule=g["sched"], length_mult=int(length) if length.is_integer() else length)


def expand_sweep(sweep: dict) -> list[Run]:
    axes = {k: sweep.get(k, SWEEP_DEFAULTS.get(k)) for k in SWEEP_KEYS}
    missing = [k for k, v in axes.items() if v is None]
    if missing:
        raise ValueError(f"sweep {sweep.get('phase')!r} lacks required axes: {', '.join(missing)}")
    runs = []
    for values in itertools.product(*axes.values()):
        kw = {SWEEP_KEYS[k]: v for k, v in zip(axes, values)}
        kw["seed"] = int(kw["seed"])
        kw["bits"] = int(kw["bits"])
        kw["size"] = str(kw["size"])
        kw["warmdown_frac"] = float(kw["warmdown_frac"])
        kw["lr_mult"] = float(kw["lr_mult"])
        runs.append(Run(phase=sweep["phase"], **kw))
    return runs


def expand_runs(config: dict) -> list[Run]:
    """All runs of the config's sweeps, in config order, each id unique.

    Two sweeps that produce the same run id are an error rather than silently
    merged: the paper counts its phases separately, so a duplicate means the
    config does not describe what its author thinks it does.
    """
    runs, seen = [], {}
    for i, sweep in enumerate(config["sweeps"]):
        for run in expand_sweep(sweep):
            if run.id in seen:
                raise ValueError(f"run {run.id} produced by sweeps {seen[run.id]} and {i}")
            seen[run.id] = i
            runs.append(run)
    return runs


def runs_by_id(config: dict) -> dict[str, Run]:
    return {r.id: r for r in expand_runs(config)}


def job_resources(config: dict, run: Run, attempt: int = 1) -> dict:
    """Cluster resources of one training job, from config["resources"]: its size's entry (else
    the default) gives the time limit in minutes, doubled on each retry so a run killed at its
    limit gets room to finish from its checkpoint, the memory and the CPU threads."""
    res = config["resources"]["sizes"].get(run.size, config["resources"]["default"])
    return {"runtime": res["runtime_min"] * 2 ** (attempt - 1), "mem_mb": res["mem_mb"],
            "threads": res.get("threads", config["train"]["threads"])}


def check_config(config: dict) -> list[Run]:
    """Checks the schema cannot express; returns the runs. Errors name the key at fault."""
    runs = expand_runs(config)
    sizes = {r.size for r in runs}
    bits = {r.bits for r in runs}
    train = config["train"]
    if train["warmup_steps"] >= train["steps"]:
        raise ValueError(f"train.warmup_steps ({train['warmup_steps']}) must be < train.steps ({train['steps']})")
    for size in config["analysis"]["heldout_sizes"]:
        if size not in sizes:
            raise ValueError(f"analysis.heldout_sizes names {size!r}, which no sweep trains (sizes: {sorted(sizes)})")
    for key, b in (("analysis.penalty_bits", config["analysis"]["penalty_bits"]), ("probe.grid_bits", config["probe"]["grid_bits"])):
        if not {16, b} <= bits:
            raise ValueError(f"{key} = {b} needs both FP16 and INT{b} runs in the sweeps (bits present: {sorted(bits)})")
    return runs
