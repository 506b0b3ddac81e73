from qatgrid import stats
from qatgrid.aggregate import load_probes, write_table
from qatgrid.logs import setup_logging

setup_logging(snakemake.log[0])
probes = load_probes(snakemake.input.probes, snakemake.params.grid_bits)
write_table(probes, snakemake.output.probes)
write_table(stats.probe_ratio(probes, snakemake.params.grid_bits, alpha=snakemake.params.alpha), snakemake.output.ratio)
