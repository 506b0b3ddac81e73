import os
from pathlib import Path

os.environ.setdefault("RAYON_NUM_THREADS", str(snakemake.threads))  # the encoder's threads, before tokenizers loads

from qatgrid.data.text import build_text_data  # noqa: E402
from qatgrid.logs import setup_logging  # noqa: E402

setup_logging(snakemake.log[0])
build_text_data(snakemake.params.data, str(Path(snakemake.output[0]).parent))
