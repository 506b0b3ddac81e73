import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def load_default_config() -> dict:
    return yaml.safe_load((REPO / "config" / "config.yaml").read_text())


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
    (qatgrid.grid.merge_config_layers: key by key at every depth, the audit block whole)."""
    from qatgrid.grid import merge_config_layers

    paths = [REPO / "config" / "config.yaml", *(REPO / "config" / n for n in names)]
    return merge_config_layers([(p.name, yaml.safe_load(p.read_text())) for p in paths])[0]


@pytest.fixture
def default_config() -> dict:
    return load_default_config()
