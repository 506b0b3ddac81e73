"""The one place where a config becomes a list of training runs.

The Snakefile, the audit and the tests all call `expand_runs`; nothing else
enumerates the grid. A run's id is a readable path, produced by `run_id` and
read back by `parse_run_id`, e.g. ``phase2/int6/15M/wd33/lr1x/muon-linear-x1/seed0``.
Runs on the two optional axes carry a suffix on the seed segment, ``seed0-bs16``,
``seed0-data2`` or ``seed0-bs16-data2``; runs without them keep the plain id.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import asdict, dataclass

# Axis name in a sweep -> field of Run. Each sweep is the cartesian product of
# its axes; a missing axis takes the default below.
AXES = (
    "bits",
    "size",
    "warmdown_frac",
    "lr_mult",
    "seed",
    "optimizer",
    "schedule",
    "length_mult",
    "batch_size",
    "data_seed",
)
SWEEP_KEYS = {
    "bits": "bits",
    "sizes": "size",
    "warmdown_fracs": "warmdown_frac",
    "lr_mults": "lr_mult",
    "seeds": "seed",
    "optimizers": "optimizer",
    "schedules": "schedule",
    "length_mults": "length_mult",
    "batch_sizes": "batch_size",
    "data_seeds": "data_seed",
}
# None on the two optional axes means: train.batch_size, and the default batch order of train.batches.
SWEEP_DEFAULTS = {
    "lr_mults": [1.0],
    "optimizers": ["muon"],
    "schedules": ["linear"],
    "length_mults": [1],
    "batch_sizes": [None],
    "data_seeds": [None],
}

# Bit-widths in descending order. Ternary (BitNet b1.58) is stored as bits = 1.
SUPPORTED_BITS = (16, 8, 6, 4, 3, 2, 1)
BITS_BY_NAME = {"fp16": 16, "ternary": 1, **{f"int{b}": b for b in (8, 6, 4, 3, 2)}}
LR_BATCH_RULES = {"hold": 0.0, "sqrt": 0.5, "linear": 1.0}  # lr x (batch / train.batch_size) ** exponent
# The base arm: the runs the boundary, penalty and robustness analyses compare against. Phase 5's
# other arms change one of these axes.
BASE_ARM = {"optimizer": "muon", "schedule": "linear", "length_mult": 1}


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
    batch_size: int | None = None
    data_seed: int | None = None

    @property
    def id(self) -> str:
        return run_id(self)

    def as_dict(self) -> dict:
        return asdict(self)

    @property
    def is_base_arm(self) -> bool:
        return all(getattr(self, k) == v for k, v in BASE_ARM.items())


def _num(x: float) -> str:
    """Shortest decimal that reads back to the same float: 1.0 -> '1', 0.125 -> '0.125'."""
    return f"{float(x):g}"


def bits_label(bits: int) -> str:
    return {16: "fp16", 1: "ternary"}.get(int(bits), f"int{int(bits)}")


def parse_bits(value, key: str) -> int:
    """A sweep's bit-width (16, 8, ..., 2, or a name such as 'ternary' or 'int3') as stored bits."""
    if isinstance(value, str) and value in BITS_BY_NAME:
        return BITS_BY_NAME[value]
    # 1 is ternary's storage code, not a one-bit integer grid: configs name it 'ternary'.
    if isinstance(value, int) and not isinstance(value, bool) and value in SUPPORTED_BITS and value != 1:
        return value
    raise ValueError(f"{key}: unknown bit-width {value!r} (expected one of 16, 8, 6, 4, 3, 2 or 'ternary')")


def run_id(run: Run) -> str:
    wd = _num(round(run.warmdown_frac * 100, 6))
    extra = (f"-bs{run.batch_size}" if run.batch_size is not None else "") + (
        f"-data{run.data_seed}" if run.data_seed is not None else ""
    )
    return (
        f"{run.phase}/{bits_label(run.bits)}/{run.size}/wd{wd}/lr{_num(run.lr_mult)}x/"
        f"{run.optimizer}-{run.schedule}-x{_num(run.length_mult)}/seed{run.seed}{extra}"
    )


# What Snakemake's {run} wildcard may match (rules/common.smk); parse_run_id is stricter.
RUN_ID_WILDCARD = (
    r"[A-Za-z0-9_.-]+/(?:fp16|int\d+|ternary)/[0-9.]+[KMB]/wd[0-9.]+/lr[0-9.]+x/"
    r"[a-z]+-[a-z]+-x[0-9.]+/seed\d+(?:-bs\d+)?(?:-data\d+)?"
)

_RUN_ID = re.compile(
    r"^(?P<phase>[A-Za-z0-9_.-]+)/(?:fp(?P<fp>16)|int(?P<int>\d+)|(?P<ternary>ternary))/(?P<size>[0-9.]+[KMB])/"
    r"wd(?P<wd>[0-9.]+)/lr(?P<lr>[0-9.]+)x/(?P<opt>[a-z]+)-(?P<sched>[a-z]+)-x(?P<len>[0-9.]+)/"
    r"seed(?P<seed>\d+)(?:-bs(?P<bs>\d+))?(?:-data(?P<data>\d+))?$"
)


def parse_run_id(text: str) -> Run:
    m = _RUN_ID.match(text)
    if not m:
        raise ValueError(f"not a run id: {text!r} (expected e.g. 'phase2/int6/15M/wd33/lr1x/muon-linear-x1/seed0')")
    g = m.groupdict()
    length = float(g["len"])
    bits = 16 if g["fp"] else 1 if g["ternary"] else int(g["int"])
    return Run(
        phase=g["phase"],
        bits=bits,
        size=g["size"],
        warmdown_frac=round(float(g["wd"]) / 100, 8),
        lr_mult=float(g["lr"]),
        seed=int(g["seed"]),
        optimizer=g["opt"],
        schedule=g["sched"],
        length_mult=int(length) if length.is_integer() else length,
        batch_size=int(g["bs"]) if g["bs"] else None,
        data_seed=int(g["data"]) if g["data"] else None,
    )


def expand_sweep(sweep: dict, index: int = 0) -> list[Run]:
    axes = {k: sweep.get(k, SWEEP_DEFAULTS.get(k)) for k in SWEEP_KEYS}
    missing = [k for k, v in axes.items() if v is None]
    if missing:
        raise ValueError(f"sweep {sweep.get('phase')!r} lacks required axes: {', '.join(missing)}")
    axes["bits"] = [parse_bits(b, f"sweeps[{index}].bits") for b in axes["bits"]]
    runs = []
    for values in itertools.product(*axes.values()):
        kw = {SWEEP_KEYS[k]: v for k, v in zip(axes, values)}
        kw["seed"] = int(kw["seed"])
        kw["size"] = str(kw["size"])
        kw["warmdown_frac"] = float(kw["warmdown_frac"])
        kw["lr_mult"] = float(kw["lr_mult"])
        kw["batch_size"] = None if kw["batch_size"] is None else int(kw["batch_size"])
        kw["data_seed"] = None if kw["data_seed"] is None else int(kw["data_seed"])
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
        for run in expand_sweep(sweep, i):
            if run.id in seen:
                raise ValueError(f"run {run.id} produced by sweeps {seen[run.id]} and {i}")
            seen[run.id] = i
            runs.append(run)
    return runs


def run_batch_size(train_cfg: dict, run: Run) -> int:
    """Sequences per step: the run's batch_size axis, else train.batch_size."""
    return run.batch_size if run.batch_size is not None else train_cfg["batch_size"]


def run_data_seed(run: Run) -> int | None:
    """The run's level on the data-order axis; None off the axis: the default order of `train.batches`
    (stream: the baseline's order, the same for every init seed; random: windows keyed on the init seed)."""
    return run.data_seed


def scheduled_steps(train_cfg: dict, length_mult: float, batch_size: int | None = None) -> int:
    """Optimiser steps at a length multiple and batch size. With train.hold_tokens a run at another batch
    size keeps the token budget of train.steps x train.batch_size sequences, so its steps scale inversely."""
    steps = max(1, round(train_cfg["steps"] * length_mult))
    if batch_size is None or not train_cfg["hold_tokens"]:
        return steps
    return max(1, steps * train_cfg["batch_size"] // batch_size)


def total_steps(train_cfg: dict, run: Run) -> int:
    """Optimiser steps of one run."""
    return scheduled_steps(train_cfg, run.length_mult, run.batch_size)


def total_tokens(train_cfg: dict, run: Run) -> int:
    """Planned training tokens of one run (steps x sequences x sequence length)."""
    return total_steps(train_cfg, run) * run_batch_size(train_cfg, run) * train_cfg["seq_len"]


def lr_batch_factor(train_cfg: dict, run: Run) -> float:
    """LR multiplier for a run's batch size: (batch / train.batch_size) ** e, e from train.lr_batch_rule
    (hold: 0, sqrt: 0.5, linear: 1). 1 for runs at the default batch size."""
    exponent = LR_BATCH_RULES[train_cfg["lr_batch_rule"]]
    return (run_batch_size(train_cfg, run) / train_cfg["batch_size"]) ** exponent


def job_resources(config: dict, run: Run, attempt: int = 1) -> dict:
    """Cluster resources of one training job, from config["resources"]: its size's entry (else
    the default) gives the time limit in minutes, doubled on each retry so a run killed at its
    limit gets room to finish from its checkpoint, the memory and the CPU threads."""
    res = config["resources"]["sizes"].get(run.size, config["resources"]["default"])
    return {
        "runtime": res["runtime_min"] * 2 ** (attempt - 1),
        "mem_mb": res["mem_mb"],
        "threads": res.get("threads", config["train"]["threads"]),
    }


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
    check_new_axes(config)
    spans = train["stream_spans"]
    if train["batches"] == "stream":
        for bs in sorted({run_batch_size(train, r) for r in runs}):
            if bs % spans:
                raise ValueError(
                    f"train.stream_spans ({spans}) must divide every run's batch size; {bs} sequences do not "
                    "(train.batch_size or a sweep's batch_sizes)"
                )
    for key, b in (
        ("analysis.penalty_bits", config["analysis"]["penalty_bits"]),
        ("probe.grid_bits", config["probe"]["grid_bits"]),
    ):
        if not {16, b} <= bits:
            raise ValueError(
                f"{key} = {b} needs both FP16 and INT{b} runs in the sweeps (bits present: {sorted(bits)})"
            )
    return runs


def check_new_axes(config: dict) -> None:
    """Batch sizes must divide a held token budget; a data-order axis needs two levels for the variance split."""
    train = config["train"]
    for i, sweep in enumerate(config["sweeps"]):
        data_seeds = sweep.get("data_seeds")
        if data_seeds is not None and len(set(data_seeds)) < 2:
            raise ValueError(
                f"sweeps[{i}].data_seeds has {len(set(data_seeds))} level(s) {data_seeds}; separating "
                "init-seed from data-order variance needs at least two (drop the key to order by seed)"
            )
        batch_sizes = sweep.get("batch_sizes") or []
        if len(batch_sizes) > 1:
            # Analyses key a cell by phase, not batch size: two batch sizes in one sweep would be pooled.
            raise ValueError(
                f"sweeps[{i}].batch_sizes lists {len(batch_sizes)} sizes {batch_sizes}; give each batch "
                "size its own sweep (phase) so the analyses keep them apart"
            )
        for bs in batch_sizes:
            for length in sweep.get("length_mults", SWEEP_DEFAULTS["length_mults"]):
                steps = scheduled_steps(train, length)
                if train["hold_tokens"] and steps * train["batch_size"] % bs:
                    raise ValueError(
                        f"sweeps[{i}].batch_sizes: {bs} does not divide the held token budget of {steps} steps x "
                        f"train.batch_size {train['batch_size']} sequences (train.hold_tokens is true)"
                    )
                run_steps = scheduled_steps(train, length, bs)
                if run_steps <= train["warmup_steps"]:
                    raise ValueError(
                        f"sweeps[{i}].batch_sizes: {bs} leaves {run_steps} steps, not more than "
                        f"train.warmup_steps ({train['warmup_steps']})"
                    )
