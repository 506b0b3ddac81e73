import pandas as pd

from qatgrid.aggregate import write_table
from qatgrid.audit import grid_table
from qatgrid.footprint import footprint_table
from qatgrid.logs import setup_logging

setup_logging(snakemake.log[0])
config = snakemake.params.config
planned = grid_table(config, "results")
table = footprint_table(
    pd.read_parquet(snakemake.input.runs),
    float(planned["est_gpu_hours"].sum(skipna=True)),
    len(planned),
    config["footprint"],
)
write_table(table, snakemake.output[0])
