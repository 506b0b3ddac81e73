"""The README's commands, run as a user runs them: parsed from its code blocks, so the docs cannot
drift from what works. Commands that finish in seconds run here (on a copy of the repository, and
those that need a finished grid on a copy whose default config is tests/tiny.yaml, run to the end);
the few that take minutes or set up a machine are listed in SLOW with the reason."""

import os
import re
from pathlib import Path

import pytest
from conftest import REPO, merged_config, snakemake, workflow_copy

from qatgrid.audit import gpu_hours


def readme_commands(path: Path = REPO / "README.md") -> list[str]:
    """Every command of the README's ```bash blocks, comments and prompts stripped, in order."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", path.read_text(), re.S):
        for line in block.splitlines():
            command = re.sub(r"\s+#\s.*$", "", line).strip()
            if command and not command.startswith("#"):
                commands.append(command)
    return commands


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    """A clone as a user has it: the default config, nothing run."""
    return workflow_copy(tmp_path_factory.mktemp("pristine"))


@pytest.mark.parametrize("grid, runs", [("paper", 1345), ("extension", 1240)])
def test_audit_of_the_large_grids_through_snakemake(pristine, grid, runs):
    """`snakemake -f audit --configfile config/<grid>.yaml` exactly as the README gives it: Snakemake
    merges the file over config/config.yaml itself (no hand-made merge), the counts match, and the
    GPU-hours it prints and writes are the audit's estimate and the figure the README quotes."""
    command = f"snakemake -f audit --configfile config/{grid}.yaml"
    assert command in readme_commands()
    proc = snakemake(pristine, *command.split()[1:])
    md = (pristine / "results" / "audit" / "grid.md").read_text()
    expected = gpu_hours(merged_config(f"{grid}.yaml"), REPO / "benchmarks" / "results")["total"]
    line = f"{runs} training runs; estimated {expected:.4g} GPU-hours."
    assert line in md and line in proc.stderr  # written, and printed by the job's log
    assert "MISMATCH" not in md and f"total: {runs} planned, {runs} expected — OK" in md
    quoted = re.search(rf"`config/{grid}\.yaml`(?:(?!\n\n).)*?≈(\d+) GPU-hours", (REPO / "README.md").read_text(), re.S)
    assert quoted and int(quoted[1]) == round(expected), "the README's GPU-hours differ from the audit's"
    assert os.path.getsize(pristine / "results" / "audit" / "grid.csv") > 0
