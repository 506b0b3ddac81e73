"""The tables a figure reads, built from the runs it draws by the same `qatgrid.stats` calls the
aggregate rules make (workflow/scripts/*_tables.py). Every analysis is per cell, so a figure's
runs give exactly the rows the whole grid's tables have for its cells."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import pandas as pd

from .. import stats

BUILDERS = {
    "loss_by_warmdown": lambda t: stats.loss_by_warmdown(t.runs, alpha=t.alpha),
    "optimal_warmdown": lambda t: stats.optimal_warmdown(t.runs),
    "paired_tests": lambda t: stats.paired_tests(t.runs, alpha=t.alpha),
    "regimes": lambda t: stats.regimes(t.build("paired_tests")),
    "robustness": lambda t: stats.robustness(t.runs),
    "robustness_curves": lambda t: stats.robustness_curves(t.runs, alpha=t.alpha),
    "boundary_map": lambda t: stats.boundary_map(t.build("optimal_warmdown"), t.build("regimes")),
    "penalty": lambda t: stats.quant_penalty(t.runs, t.settings["penalty_bits"]),
    "penalty_fit": lambda t: stats.fit_penalty_law(t.build("penalty"), t.settings["heldout_sizes"], alpha=t.alpha),
    "probe_ratio": lambda t: stats.probe_ratio(t.probes, t.settings["grid_bits"], alpha=t.alpha),
}


class Tables(Mapping):
    """Named tables computed on first use from a runs table (and a probes table), with the figure
    settings (`registry.settings`). `names` limits which a figure may read, so its registry entry
    stays true."""

    def __init__(
        self,
        runs: pd.DataFrame,
        settings: dict,
        probes: pd.DataFrame | None = None,
        names: Iterable[str] | None = None,
    ):
        self.runs, self.probes, self.settings = runs, probes, settings
        self.alpha = settings["alpha"]
        self.names = tuple(BUILDERS if names is None else names)
        self._cache: dict[str, pd.DataFrame] = {}

    def only(self, names: Iterable[str]) -> Tables:
        """The same tables (and cache), readable only by these names."""
        view = Tables(self.runs, self.settings, self.probes, names)
        view._cache = self._cache
        return view

    def build(self, name: str) -> pd.DataFrame:
        """Any table, whatever `names` allows (used by the builders for their dependencies)."""
        if name not in self._cache:
            self._cache[name] = BUILDERS[name](self)
        return self._cache[name]

    def __getitem__(self, name: str) -> pd.DataFrame:
        if name not in self.names:
            raise KeyError(f"{name!r} is not among this figure's tables {self.names}")
        return self.build(name)

    def __iter__(self):
        return iter(self.names)

    def __len__(self) -> int:
        return len(self.names)
