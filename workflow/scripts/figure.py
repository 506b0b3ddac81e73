import pandas as pd

from qatgrid import plots
from qatgrid.io import atomic_path, setup_logging
from qatgrid.plots import captions
from qatgrid.stats import base_arm

setup_logging(snakemake.log[0])
inp = snakemake.input
table = pd.read_csv(inp.table)
facts = pd.read_csv(inp.facts) if hasattr(inp, "facts") else table
out = (snakemake.output.pdf, snakemake.output.png)
name = snakemake.rule.removeprefix("figure_")
draw, found = {
    "loss_vs_warmdown": (lambda: plots.loss_vs_warmdown(base_arm(table), *out), captions.optimum_found),
    "optimal_warmdown": (lambda: plots.optimal_warmdown_heatmap(base_arm(table), *out), captions.optimum_found),
    "penalty_law": (
        lambda: plots.penalty_law(table, pd.read_csv(inp.fit), *out),
        lambda _: captions.penalty_found(pd.read_csv(inp.fit)),
    ),
    "paired_z": (lambda: plots.paired_z_by_size(table, *out), captions.boundary_found),
    "grid_distance": (lambda: plots.grid_distance(table, *out), captions.probe_found),
    "robustness": (lambda: plots.robustness(table, *out), captions.robustness_found),
    "boundary_map": (lambda: plots.boundary_map(table, *out), captions.boundary_map_found),
}[name]
draw()
with atomic_path(snakemake.output.caption) as tmp:
    tmp.write_text(captions.render(open(inp.template).read(), found(facts)))
