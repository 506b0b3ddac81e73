"""Every figure, by name: the runs it draws, the tables it reads (built from those runs, see
`tables.py`) and its module, `qatgrid.plots.<name>`, which defines `draw(tables, pdf, png)` and
`caption(tables)` (this run's numbers for the report caption, `workflow/report/<name>.rst`).

Adding a figure is one module and one entry in FIGURES; the workflow's `figure` rule, its targets,
the report and the gallery all follow. This module imports neither torch nor pandas nor
matplotlib: the Snakefile reads it at parse time, in every cluster job.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from ..runs import Run, first_phase

Select = Callable[[list[Run], dict], list[Run]]


@dataclass(frozen=True)
class Figure:
    name: str
    tables: tuple[str, ...]  # names of the tables it reads (tables.BUILDERS)
    select: Select  # the runs it draws, from the grid's runs and the config
    probes: bool = False  # reads the runs' probe files instead of their metrics

    @property
    def module(self):
        return importlib.import_module(f"{__package__}.{self.name}")

    def draw(self, tables, pdf: str, png: str) -> list[str]:
        """Draw the figure; returns its layout problems (overlapping or clipped text)."""
        return self.module.draw(tables, pdf, png)

    def caption(self, tables) -> str:
        return self.module.caption(tables)

    def runs(self, runs: Iterable[Run], config: dict) -> list[Run]:
        """The runs this figure draws, in grid order."""
        runs = list(runs)
        chosen = set(self.select(runs, config))
        return [r for r in runs if r in chosen]


def _cell(run: Run) -> tuple:
    return run.phase, run.bits, run.size, run.optimizer, run.schedule, run.length_mult


def first_base_cells(runs: list[Run], config: dict) -> list[Run]:
    """Base-arm runs of each (bits, size)'s first phase (Phase 2 before Phase 5 before Phase 6), the
    cells the optimum figures and the boundary map draw."""
    base = [r for r in runs if r.is_base_arm]
    phases: dict[tuple, set[str]] = {}
    for r in base:
        phases.setdefault((r.bits, r.size), set()).add(r.phase)
    first = {cell: first_phase(names) for cell, names in phases.items()}
    return [r for r in base if r.phase == first[r.bits, r.size]]


def low_bit_runs(runs: list[Run], config: dict) -> list[Run]:
    """INT4 and below (every run when the grid has none): the cells of the paired-z figure."""
    return [r for r in runs if r.bits <= 4] or runs


def penalty_runs(runs: list[Run], config: dict) -> list[Run]:
    """Base arm at FP16 and at `analysis.penalty_bits`."""
    return [r for r in runs if r.is_base_arm and r.bits in (16, config["analysis"]["penalty_bits"])]


def probed_runs(runs: list[Run], config: dict) -> list[Run]:
    """FP16 and `probe.grid_bits` runs, whose probes the grid-distance ratio pairs."""
    return [r for r in runs if r.bits in (16, config["probe"]["grid_bits"])]


def robustness_runs(runs: list[Run], config: dict) -> list[Run]:
    """Every robustness arm (optimizer, schedule or length off the base arm) and the base-arm runs
    each arm cell is compared with: same bits and size, the warmdowns the arm ran, from the first
    base phase that ran any of them (as `stats.robustness` chooses)."""
    arms = [r for r in runs if not r.is_base_arm]
    base: dict[tuple, list[Run]] = {}
    for r in runs:
        if r.is_base_arm:
            base.setdefault((r.bits, r.size), []).append(r)
    levels: dict[tuple, set] = {}
    for r in arms:
        levels.setdefault(_cell(r), set()).add(r.warmdown_frac)
    chosen = list(arms)
    for (_, bits, size, *_), warmdowns in levels.items():
        cand = [b for b in base.get((bits, size), []) if b.warmdown_frac in warmdowns]
        if cand:
            phase = first_phase(b.phase for b in cand)
            chosen += [b for b in cand if b.phase == phase]
    return chosen


FIGURES: dict[str, Figure] = {
    f.name: f
    for f in (
        Figure("loss_vs_warmdown", ("loss_by_warmdown", "optimal_warmdown"), first_base_cells),
        Figure("optimal_warmdown", ("optimal_warmdown", "loss_by_warmdown"), first_base_cells),
        Figure("penalty_law", ("penalty", "penalty_fit"), penalty_runs),
        Figure("paired_z", ("paired_tests",), low_bit_runs),
        Figure("grid_distance", ("probe_ratio",), probed_runs, probes=True),
        Figure("robustness", ("robustness", "robustness_curves"), robustness_runs),
        Figure("boundary_map", ("boundary_map",), first_base_cells),
    )
}


def settings(config: dict) -> dict:
    """The configuration keys the figures' tables depend on (the `figure` rule's params)."""
    a = config["analysis"]
    return {
        "alpha": a["alpha"],
        "penalty_bits": a["penalty_bits"],
        "heldout_sizes": list(a["heldout_sizes"]),
        "grid_bits": config["probe"]["grid_bits"],
    }


class FileText:
    """A file's text, read when shown rather than when made. Snakemake's report cannot put a
    wildcard in a caption's path (snakemake issue #235), so the one `figure` rule's caption template
    (workflow/report/figure.rst) calls `text()` on this param to show the caption each figure's job
    wrote. Its repr names only the path, so nothing else (the params rerun trigger, which skips
    objects it cannot represent, or the report's list of params) reads the text."""

    def __init__(self, path: str):
        self.path = path

    def text(self) -> str:
        p = Path(self.path)
        return p.read_text() if p.exists() else ""

    def __repr__(self) -> str:
        return f"FileText({self.path!r})"
