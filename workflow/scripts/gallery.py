import os
import shutil

from qatgrid.io import atomic_path
from qatgrid.logs import setup_logging

setup_logging(snakemake.log[0])
for src, dest in zip(snakemake.input, snakemake.output):
    with atomic_path(dest) as tmp:
        shutil.copyfile(src, tmp)
        os.chmod(tmp, 0o644)  # committed files: readable by all, unlike the private temporary file
