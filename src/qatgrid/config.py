"""The training configuration, typed: built and checked once from the config's `train` section
(plus `logging.tensorboard` and `compile_cache`), like the baseline's `Hyperparameters`.

The JSON schema (config/schema/config.schema.yaml) documents and validates every key; the
defaults below are the schema's (tests/test_grid.py checks that they agree), for callers that
build a config without Snakemake's validation."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from functools import cached_property

from .grid import TRAIN_DEFAULTS, Run, lr_batch_factor, run_batch_size, run_data_seed, total_steps
from .memory import plan_micro_batches
from .schedule import warmdown_start

NOT_TRAIN = ("tensorboard", "compile_cache", "vocab_size")  # TrainConfig fields from outside `train`


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
    precision: str = "auto"
    compile: str | bool = "auto"
    hold_tokens: bool = TRAIN_DEFAULTS["hold_tokens"]
    lr_batch_rule: str = TRAIN_DEFAULTS["lr_batch_rule"]
    shared_trunk: bool = True
    trunk_jobs: str = TRAIN_DEFAULTS["trunk_jobs"]  # segments | group
    batches: str = TRAIN_DEFAULTS["batches"]  # stream | random
    stream_spans: int = TRAIN_DEFAULTS["stream_spans"]
    gpu_memory_gib: float | None = TRAIN_DEFAULTS["gpu_memory_gib"]
    micro_batches: str | int = TRAIN_DEFAULTS["micro_batches"]  # auto | count
    # not in `train`: logging.tensorboard, the top-level compile_cache and data.vocab_size
    tensorboard: bool = field(default=False, compare=False)
    compile_cache: str | None = field(default=None, compare=False)
    vocab_size: int | None = field(default=None, compare=False)  # data.vocab_size: the memory model's logits

    @classmethod
    def from_config(cls, cfg: dict) -> TrainConfig:
        """From a whole config ({train, logging?, compile_cache?}); an unknown train key is an error naming it."""
        train = dict(cfg["train"])
        known = {f.name for f in dataclasses.fields(cls)} - set(NOT_TRAIN)
        unknown = sorted(set(train) - known)
        if unknown:
            raise ValueError(f"train: unknown key(s) {unknown}; expected some of {sorted(known)}")
        missing = sorted(
            f.name for f in dataclasses.fields(cls) if f.default is dataclasses.MISSING and f.name not in train
        )
        if missing:
            raise ValueError(f"train: missing key(s) {missing}")
        return cls(
            **train,
            tensorboard=bool((cfg.get("logging") or {}).get("tensorboard", False)),
            compile_cache=cfg.get("compile_cache"),
            vocab_size=(cfg.get("data") or {}).get("vocab_size"),
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
            micro_batches=plan_micro_batches(self.train_section, run, self.vocab_size),
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
