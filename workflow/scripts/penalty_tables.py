from qatgrid import stats
from qatgrid.aggregate import load_runs, write_table
from qatgrid.logs import setup_logging

setup_logging(snakemake.log[0])
penalty = stats.quant_penalty(load_runs(snakemake.input.metrics), snakemake.params.bits)
write_table(penalty, snakemake.output.penalty)
write_table(
    stats.fit_penalty_law(penalty, snakemake.params.heldout_sizes, alpha=snakemake.params.alpha), snakemake.output.fit
)
