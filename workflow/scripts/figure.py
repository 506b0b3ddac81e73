from qatgrid.aggregate import load_probes, load_runs
from qatgrid.io import atomic_path
from qatgrid.logs import setup_logging
from qatgrid.plots.captions import render
from qatgrid.plots.registry import FIGURES
from qatgrid.plots.tables import Tables

setup_logging(snakemake.log[0])
figure = FIGURES[snakemake.wildcards.name]
settings, inp = snakemake.params.settings, snakemake.input
if figure.probes:
    tables = Tables(None, settings, probes=load_probes(inp.probes, settings["grid_bits"]), names=figure.tables)
else:
    tables = Tables(load_runs(inp.metrics), settings, names=figure.tables)
figure.draw(tables, snakemake.output.pdf, snakemake.output.png)
with atomic_path(snakemake.output.caption) as tmp:
    tmp.write_text(render(open(inp.template).read(), figure.caption(tables)))
