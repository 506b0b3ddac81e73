from qatgrid.aggregate import load_runs, write_table
from qatgrid.logs import setup_logging

setup_logging(snakemake.log[0])
runs = load_runs(snakemake.input.metrics)
write_table(runs, snakemake.output.parquet)
write_table(runs, snakemake.output.csv)
