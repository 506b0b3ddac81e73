import pandas as pd

from qatgrid import stats
from qatgrid.aggregate import write_table
from qatgrid.logs import setup_logging

setup_logging(snakemake.log[0])
write_table(
    stats.boundary_map(pd.read_csv(snakemake.input.optimal), pd.read_csv(snakemake.input.regimes)), snakemake.output[0]
)
