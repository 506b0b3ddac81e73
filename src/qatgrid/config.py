"""The configuration: loaded once, the same way everywhere, and the training section typed.

`load_config` (files) and `load_layers` (mappings, what the Snakefile has) are the one way to
build "the config as Snakemake sees it": Snakemake's merge of config/config.yaml, each
--configfile and --config (mappings key by key at every depth, lists and scalars replaced; the
`audit` block whole, see merge_config_layers), then the JSON schema's defaults and checks
(config/schema/config.schema.yaml, validated by Snakemake's own `validate`), then the checks the
schema cannot express (check_config, below). The rules, `qatgrid status`, the tests, the
benchmarks and the GPU check all call it.

Defaults are written once, in the schema. `TrainConfig`, the typed `train` section (plus
`logging.tensorboard` and `compile_cache`, like the baseline's `Hyperparameters`), reads the
ones a caller leaves out from there.
"""

from __future__ import annotations

import copy
import dataclasses
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

import yaml

from .memory import plan_micro_batches, runs_per_gpu
from .runs import SWEEP_DEFAULTS, Run, expand_runs
from .schedule import lr_batch_factor, run_batch_size, run_data_seed, scheduled_steps, total_steps, warmdown_start

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = REPO / "config" / "config.yaml"  # the workflow's `configfile:`
SCHEMA = REPO / "config" / "schema" / "config.schema.yaml"
# Config sections a config file gives whole: a later file's section replaces an earlier one's
# instead of merging key by key (see merge_config_layers).
WHOLE_SECTIONS = ("audit",)
NOT_TRAIN = ("tensorboard", "compile_cache", "vocab_size", "pack_sizes", "pack_runs")  # fields from outside `train`


def merge_config_layers(layers) -> tuple[dict, dict[str, str]]:
    """Config files merged in order, as Snakemake merges `--configfile` over the workflow's
    `configfile:` (mappings key by key at every depth, lists and scalars replaced), except the
    sections in WHOLE_SECTIONS, which the last file that has one gives whole.

    `audit` is such a section: its expected run counts, device and throughputs describe one grid
    on one device, so keys of another file's audit block (the default's phase counts, its CPU
    device) must never survive under the grid's own. `layers` are (name, mapping) pairs; returns
    the merged config and, per top-level key, the name of the layer it was last set by."""
    config: dict = {}
    sources: dict[str, str] = {}
    for name, layer in layers:
        for key, value in (layer or {}).items():
            if key not in WHOLE_SECTIONS and isinstance(value, dict) and isinstance(config.get(key), dict):
                _merge(config[key], value)
            else:
                config[key] = copy.deepcopy(value)
            sources[key] = name
    return config, sources


def _merge(into: dict, update: dict) -> None:
    for key, value in update.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)


def load_layers(layers, schema: str | Path = SCHEMA) -> tuple[dict, dict[str, str]]:
    """(name, mapping) layers merged (merge_config_layers), the schema's defaults filled in and
    its checks passed, then check_config's: the config and, per top-level key, its layer's name."""
    from snakemake.utils import validate  # Snakemake's validation, so its defaults are Snakemake's

    config, sources = merge_config_layers(layers)
    validate(config, str(schema))
    check_config(config)
    return config, sources


def load_config(
    configfiles=(), overrides: dict | None = None, base: str | Path = BASE_CONFIG, schema: str | Path = SCHEMA
) -> dict:
    """The config Snakemake builds from `snakemake --configfile <configfiles> --config <overrides>`:
    `base` (the workflow's config/config.yaml), each config file in order, then `overrides`,
    loaded by load_layers against `schema`. Both default to this package's workflow; `qatgrid
    status` passes the ones of the workflow in the current folder."""
    layers = []
    for path in [base, *configfiles]:
        if not Path(path).exists():
            raise FileNotFoundError(f"config file not found: {path}")
        layers.append((str(path), yaml.safe_load(Path(path).read_text()) or {}))
    if overrides:
        layers.append(("--config", overrides))
    return load_layers(layers, schema)[0]


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


@cache
def schema_defaults(section: str) -> dict:
    """The defaults the schema gives the keys of a top-level section (e.g. 'train')."""
    properties = yaml.safe_load(SCHEMA.read_text())["properties"][section]["properties"]
    return {key: prop["default"] for key, prop in properties.items() if "default" in prop}


@dataclass(frozen=True)
class TrainConfig:
    device: str  # auto | cpu | cuda[:N]
    threads: int
    steps: int
    warmup_steps: int
    seq_len: int
    batch_size: int
    lr: dict  # {muon, embed, scalar, adamw}
    muon_momentum: dict  # {start, end, warmup_steps}
    weight_decay: float
    grad_clip: float
    logit_softcap: float
    log_every: int
    eval_every: int
    eval_tokens: int
    checkpoint_every: int
    diverge_loss: float
    # keys with a default in the schema (schema_defaults("train") fills them in from_config)
    precision: str  # auto | fp32 | bf16
    compile: str | bool  # auto | true | false
    hold_tokens: bool
    lr_batch_rule: str
    shared_trunk: bool
    trunk_jobs: str  # segments | group
    batches: str  # stream | random
    stream_spans: int
    gpu_memory_gib: float | None
    micro_batches: str | int  # auto | count
    # not in `train`: logging.tensorboard, the top-level compile_cache, data.vocab_size and the packing
    tensorboard: bool = field(default=False, compare=False)
    compile_cache: str | None = field(default=None, compare=False)
    vocab_size: int | None = field(default=None, compare=False)  # data.vocab_size: the memory model's logits
    # resources.pack_sizes / pack_runs: runs of these sizes share a GPU, pack_runs at a time
    pack_sizes: tuple[str, ...] = field(default=(), compare=False)
    pack_runs: int = field(default=1, compare=False)

    @classmethod
    def from_config(cls, cfg: dict) -> TrainConfig:
        """From a whole config ({train, logging?, compile_cache?, data?, resources?}); an unknown train key is an error
        naming it; a key the schema has a default for may be left out."""
        train = {**schema_defaults("train"), **cfg["train"]}
        resources = cfg.get("resources") or {}
        known = {f.name for f in dataclasses.fields(cls)} - set(NOT_TRAIN)
        unknown = sorted(set(train) - known)
        if unknown:
            raise ValueError(f"train: unknown key(s) {unknown}; expected some of {sorted(known)}")
        missing = sorted(known - set(train))
        if missing:
            raise ValueError(f"train: missing key(s) {missing}")
        return cls(
            **train,
            tensorboard=bool((cfg.get("logging") or {}).get("tensorboard", False)),
            compile_cache=cfg.get("compile_cache"),
            vocab_size=(cfg.get("data") or {}).get("vocab_size"),
            pack_sizes=tuple(resources.get("pack_sizes", ())),
            pack_runs=resources.get("pack_runs", 1),
        )

    @cached_property
    def train_section(self) -> dict:
        """The `train` section as a dict, for the grid's step arithmetic (shared with the audit)."""
        return {k: v for k, v in dataclasses.asdict(self).items() if k not in NOT_TRAIN}

    def plan(self, run: Run) -> RunPlan:
        steps = total_steps(self.train_section, run)
        return RunPlan(
            steps=steps,
            warmdown_start=warmdown_start(steps, run.warmdown_frac),
            batch_size=run_batch_size(self.train_section, run),
            lr_mult=run.lr_mult * lr_batch_factor(self.train_section, run),
            data_seed=run_data_seed(run),
            micro_batches=plan_micro_batches(
                self.train_section, run, self.vocab_size, runs_per_gpu(run.size, self.pack_sizes, self.pack_runs)
            ),
        )


@dataclass(frozen=True)
class RunPlan:
    """What a run's axes make of the training configuration."""

    steps: int
    warmdown_start: int
    batch_size: int
    lr_mult: float
    data_seed: int | None  # None: the baseline's one data order
    micro_batches: int = 1  # a step's batch in this many micro-batches (qatgrid.memory)
