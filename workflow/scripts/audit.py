import logging

from qatgrid.audit import report, write_audit
from qatgrid.io import setup_logging

setup_logging(snakemake.log[0])
table = write_audit(
    snakemake.params.config, "results", snakemake.output.md, snakemake.output.csv, snakemake.params.benchmarks
)
logging.getLogger("qatgrid.audit").info("\n%s", report(snakemake.params.config, table))
