"""The runs: the Run type, its readable id, and the one place where a config's sweeps become runs.

The Snakefile, the plan, the audit and the tests all call `expand_runs`; nothing else
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


def phase_key(phase: str) -> tuple:
    """Sort key of a phase name: its number, then the name, so 'phase2' < 'phase5-int4' < 'phase10'
    (a name without a number sorts after every numbered one)."""
    number = re.search(r"\d+", phase)
    return (int(number[0]) if number else float("inf"), phase)


def first_phase(phases) -> str:
    """The first of some phase names in phase order (phase_key): where a (bits, size) cell run in
    several base-arm phases is taken from (Phase 2 before Phase 5 before Phase 6)."""
    return min(phases, key=phase_key)


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
