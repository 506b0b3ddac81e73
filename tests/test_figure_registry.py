"""The figure registry is the one list of figures: the workflow's targets, the README and the report
templates agree with it; each figure plans the training runs it draws and no other; and drawn from
only those runs it is the figure the whole grid's tables give."""

import re

import figure_tables
import pytest
from conftest import REPO, load_default_config, snakemake, workflow_copy
from test_audit import paper_config

from qatgrid.plots.registry import FIGURES
from qatgrid.plots.tables import BUILDERS
from qatgrid.runs import expand_runs
from qatgrid.trunks import plan_branches, trunk_name

CONFIGS = {"default": (load_default_config, ()), "paper": (paper_config, ("--configfile", "config/paper.yaml"))}


@pytest.fixture(scope="module")
def wf(tmp_path_factory):
    return workflow_copy(tmp_path_factory.mktemp("wf"))


def test_registry_entries_are_complete():
    for name, figure in FIGURES.items():
        assert callable(figure.module.draw) and callable(figure.module.caption), name
        assert set(figure.tables) <= set(BUILDERS), name
        assert "{found}" in (REPO / "workflow" / "report" / f"{name}.rst").read_text(), name


def test_registry_targets_and_readme_agree(wf):
    out = snakemake(wf, "-n").stdout
    drawn = re.findall(r"rule figure:\n(?:\s+\w+: .*\n)*?\s+wildcards: name=(\w+)", out)
    assert sorted(drawn) == sorted(FIGURES)
    readme = (REPO / "README.md").read_text()
    paragraph = re.search(r"^Figures: (.+?)(?:\n\n|Tables)", readme, re.M | re.S)[1]
    assert re.findall(r"`(\w+)`", paragraph.split(". ")[0]) == list(FIGURES)


@pytest.mark.parametrize("grid", CONFIGS)
@pytest.mark.parametrize("name", FIGURES)
def test_one_figure_plans_only_the_runs_it_draws(wf, grid, name):
    load, args = CONFIGS[grid]
    config = load()
    expected = FIGURES[name].runs(expand_runs(config), config)
    out = snakemake(wf, f"results/figures/{name}.pdf", "-n", "--quiet", "rules", *args).stdout
    jobs = {m[1]: int(m[2]) for m in re.finditer(r"^(\w+)\s+(\d+)$", out, re.M)}
    if config["train"].get("trunk_jobs") == "group":  # the default: one job per group of a drawn run
        assert jobs.get("run_outputs", 0) == len(expected) and "train" not in jobs and "trunk" not in jobs
        assert jobs.get("train_group", 0) == len({trunk_name(r) for r in expected})
        return
    assert jobs.get("train", 0) == len(expected)
    # and only the trunk segments those runs start from, each with the segments before it
    branches = plan_branches(expand_runs(config), config["train"])
    needed = set()
    for run in expected:
        segment = branches[run.id].start[0] if run.id in branches else None
        while segment is not None:
            needed.add(segment)
            segment = branches[segment].previous
    assert jobs.get("trunk", 0) == len(needed)
    if grid == "paper" and name == "paired_z":
        assert len(expected) == 160 and {r.bits for r in expected} == {4}


def test_the_runs_each_figure_draws():
    config = paper_config()
    runs = expand_runs(config)
    robust = FIGURES["robustness"].runs(runs, config)
    arms = [r for r in robust if r.phase != "phase2"]
    assert len(arms) == 240 and not any(
        r.optimizer == "muon" and r.schedule == "linear" and r.length_mult == 1 for r in arms
    )
    base = [r for r in robust if r.phase == "phase2"]
    assert {r.size for r in base} == {"15M"} and len(base) == 3 * 4 * 3 * 5  # bits x wd x LR x seeds
    default = load_default_config()
    optimum = FIGURES["optimal_warmdown"].runs(expand_runs(default), default)
    assert not any(r.phase in ("phase6-bs4", "phase6-bs16", "phase6-data") for r in optimum)  # drawn from Phase 2


@pytest.mark.parametrize("grid", CONFIGS)
def test_a_figure_from_its_runs_is_the_whole_grids_figure(grid, tmp_path):
    """Analyses are per cell: the tables of a figure's runs give the caption, and on the default grid
    (first phases, robustness arms on fewer levels than their base) the very image, that the tables of
    every run give."""
    config = CONFIGS[grid][0]()
    every = figure_tables.tables(config)
    for name, figure in FIGURES.items():
        own = figure_tables.tables(config, runs=figure.runs(expand_runs(config), config))
        assert figure.caption(every.only(figure.tables)) == figure.caption(own.only(figure.tables)), name
        if grid != "default":
            continue
        pngs = []
        for label, tables in (("all", every), ("own", own)):
            figure.draw(tables.only(figure.tables), str(tmp_path / f"{label}.pdf"), str(tmp_path / f"{label}.png"))
            pngs.append((tmp_path / f"{label}.png").read_bytes())
        assert pngs[0] == pngs[1], f"{name} differs when drawn from its own runs"
