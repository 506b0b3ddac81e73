from qatgrid import stats
from qatgrid.aggregate import load_runs, write_table
from qatgrid.logs import setup_logging

setup_logging(snakemake.log[0])
runs = load_runs(snakemake.input.metrics)
tests = stats.paired_tests(runs, alpha=snakemake.params.alpha)
write_table(stats.loss_by_warmdown(runs, alpha=snakemake.params.alpha), snakemake.output.by_warmdown)
write_table(stats.optimal_warmdown(runs), snakemake.output.optimal)
write_table(tests, snakemake.output.paired)
write_table(stats.regimes(tests), snakemake.output.regimes)
write_table(stats.robustness(runs), snakemake.output.robustness)
