import pandas as pd

from qatgrid import plots
from qatgrid.io import setup_logging
from qatgrid.stats import base_arm

setup_logging(snakemake.log[0])
table = pd.read_csv(snakemake.input.table)
out = (snakemake.output.pdf, snakemake.output.png)
name = snakemake.rule.removeprefix("figure_")
if name == "loss_vs_warmdown":
    plots.loss_vs_warmdown(base_arm(table), *out)
elif name == "optimal_warmdown":
    plots.optimal_warmdown_heatmap(base_arm(table), *out)
elif name == "penalty_law":
    plots.penalty_law(table, pd.read_csv(snakemake.input.fit), *out)
elif name == "paired_z":
    plots.paired_z_by_size(table, *out)
elif name == "robustness":
    plots.robustness(table, *out)
elif name == "grid_distance":
    plots.grid_distance(table, *out)
else:
    raise ValueError(f"no figure for rule {snakemake.rule}")
