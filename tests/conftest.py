import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def load_default_config() -> dict:
    """config/config.yaml as the workflow loads it (qatgrid.config.load_config: schema defaults filled in)."""
    from qatgrid.config import load_config

    return load_config()


def workflow_copy(dest: Path) -> Path:
    """The workflow files of the repo, copied into `dest` (as a user's clone would have them)."""
    for name in ("Snakefile", "rules", "workflow", "config", "envs", "profiles", "src"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, dest / name)
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run([SNAKEMAKE, *args], cwd=workdir, capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return proc


def merged_config(*names: str) -> dict:
    """config/config.yaml with config/<name> ... merged over it as Snakemake merges --configfile
    (qatgrid.config.load_config: key by key at every depth, the audit block whole, schema defaults)."""
    from qatgrid.config import load_config

    return load_config([REPO / "config" / n for n in names])


def small_train(**overrides) -> dict:
    """The default config's `train` section (from the loader) at test scale: on the CPU, short
    sequences, small batches; `overrides` set keys (a mapping merges into lr / muon_momentum)."""
    train = load_default_config()["train"]
    small = {"device": "cpu", "threads": 1, "seq_len": 32, "batch_size": 4, "lr": {"embed": 0.01}, **overrides}
    for key, value in small.items():
        train[key] = {**train[key], **value} if isinstance(value, dict) else value
    return train


@pytest.fixture
def default_config() -> dict:
    return load_default_config()
