from qatgrid.io import setup_logging, write_json
from qatgrid.probe import probe_checkpoint

setup_logging(snakemake.log[0])
write_json(snakemake.output[0], probe_checkpoint(snakemake.input.ckpt, snakemake.params.grid_bits))
