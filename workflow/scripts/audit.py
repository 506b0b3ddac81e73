import logging
from pathlib import Path

from qatgrid.audit import write_audit
from qatgrid.logs import setup_logging

setup_logging(snakemake.log[0])
write_audit(
    snakemake.params.config,
    "results",
    snakemake.output.md,
    snakemake.output.csv,
    snakemake.params.benchmarks,
    snakemake.params.sources,
    profile=snakemake.params.profile,
)
logging.getLogger("qatgrid.audit").info("\n%s", Path(snakemake.output.md).read_text())
