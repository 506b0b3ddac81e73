"""Every table the figures read, computed by the package's own analyses from synthetic runs
with the paper's findings planted (tests/synthetic.py), without running Snakemake."""

import dataclasses

import numpy as np
import pandas as pd
from synthetic import planted_loss

from qatgrid.plots.registry import settings
from qatgrid.plots.tables import Tables
from qatgrid.runs import expand_runs
from qatgrid.sizes import size_to_number


def extension_loss(run, rng) -> float:
    """Below INT4: INT3 follows INT4's boundary one size earlier, INT2 is decisive at 10% from
    30M up, ternary is noise everywhere."""
    n = size_to_number(run.size)
    loss = 4.3 - 0.3 * np.log10(n / 1e6) + 0.2 * (4 - run.bits)
    if run.bits == 3:
        loss += (0.5 if n >= 30e6 else 0.0) * (run.warmdown_frac - 0.33) ** 2
    elif run.bits == 2:
        loss += (0.5 if n >= 30e6 else 0.0) * (run.warmdown_frac - 0.1) ** 2
    return float(loss + rng.normal(0, 0.0005))


def runs_table(runs, loss=planted_loss, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {
            **run.as_dict(),
            "run_id": f"{i}",
            "n_params": int(size_to_number(run.size)),
            "lr": 0.04 * run.lr_mult,
            "final_val_loss": loss(run, rng) + 0.003 * np.sin(run.seed),
            "diverged": False,
        }
        for i, run in enumerate(runs)
    ]
    return pd.DataFrame(rows)


def extension_runs(config: dict) -> list:
    """The config's runs plus INT3/INT2/ternary copies of its INT4 boundary sweep (wd33 vs wd10 or
    whatever the config compares), as an extension grid would add them."""
    runs = expand_runs(config)
    int4 = [r for r in runs if r.bits == 4]
    return runs + [dataclasses.replace(r, bits=b) for b in (3, 2, 1) for r in int4]


def probes_table(runs, grid_bits: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    rows = [
        {**run.as_dict(), "mean_distance": (0.24 if run.bits == 16 else 0.2496) + rng.normal(0, 0.0005)}
        for run in runs
        if run.bits in (16, grid_bits)
    ]
    return pd.DataFrame(rows)


def tables(config: dict, extension: bool = False, runs=None) -> Tables:
    """Every table (computed on first use) of the config's runs with the paper's findings planted, or
    of `runs`, a subset of them: a figure's tables are those of the runs it draws."""
    every = extension_runs(config) if extension else expand_runs(config)
    runs = every if runs is None else runs

    def loss(r, rng):
        return extension_loss(r, rng) if r.bits < 4 else planted_loss(r, rng)

    chosen, s = set(runs), settings(config)
    df = runs_table(every, loss)  # every run's numbers drawn in grid order, then the subset taken
    df = df[[r in chosen for r in every]].reset_index(drop=True)
    probes = probes_table(every, s["grid_bits"])
    probed = [r for r in every if r.bits in (16, s["grid_bits"])]
    probes = probes[[r in chosen for r in probed]].reset_index(drop=True)
    return Tables(df, s, probes=probes)
