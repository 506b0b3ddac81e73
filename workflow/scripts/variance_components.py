from qatgrid import stats
from qatgrid.aggregate import load_runs, write_table
from qatgrid.logs import setup_logging

setup_logging(snakemake.log[0])
write_table(stats.variance_components(load_runs(snakemake.input.metrics)), snakemake.output[0])
