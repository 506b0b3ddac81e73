"""The README's commands, run as a user runs them: parsed from its code blocks, so the docs cannot
drift from what works. Commands that finish in seconds run here (on a copy of the repository, and
those that need a finished grid on a copy whose default config is tests/tiny.yaml, run to the end);
the few that take minutes or set up a machine are listed in SLOW with the reason."""

import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import REPO, SNAKEMAKE, merged_config, snakemake, workflow_copy

from qatgrid.audit import gpu_hours
from qatgrid.config import merge_config_layers

# README commands this file does not run, and why. Each must still be in the README.
SLOW = {
    # Quick start: an install, then the whole default pipeline (minutes); CI (.ci/run) runs it verbatim
    "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e . "
    "&& .venv/bin/snakemake --cores all",
    # Quick start: an install, then this whole test suite; CI runs it verbatim
    "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e '.[test]' "
    "&& .venv/bin/python -m pytest",
    # the cluster's install (minutes, needs the network)
    "python3 -m venv .venv && .venv/bin/pip install torch==2.13.0 && .venv/bin/pip install -e .",
    # shell state only; these tests put the environment's bin folder first on PATH instead
    "source .venv/bin/activate",
    # submits the paper grid to SLURM; tests/test_workflow.py dry-runs this profile and
    # tests/slurm/ runs it on a live one-node cluster
    "snakemake --profile profiles/slurm --configfile config/paper.yaml",
}
# Run by test_audit_of_the_large_grids_through_snakemake.
AUDITS = {f"snakemake -f audit --configfile config/{grid}.yaml" for grid in ("paper", "extension")}
# Run on a clone as a user has it (the default config, nothing run), with what each must show.
PRISTINE = {
    "snakemake -n": r"^run_outputs\s+86$",
    "snakemake -n --quiet rules": r"^train_group\s+35$(.|\n)*^run_outputs\s+86$",
    "snakemake -n --quiet rules --configfile config/paper.yaml": r"^train\s+1345$",
    "snakemake -n --quiet rules --configfile config/extension.yaml": r"^train\s+1240$",
    "snakemake --lint": r"Congratulations, your workflow is in a good condition!",
    "qatgrid status": r"^total\s+86\s+0\s+0\s+0\s+0\s+0\s+86$",
    "qatgrid status --configfile config/paper.yaml --json": r'"planned": 1345',
}
# Run in this order on a clone whose default config is tests/tiny.yaml (31 runs, a minute or two):
# the one-figure target first (it trains only what that figure needs), then the whole grid, then
# what reads a finished grid. `my.yaml` is a config that changes nothing, so nothing reruns.
FINISHED = [
    ("snakemake results/figures/penalty_law.pdf", r""),
    ("snakemake all --cores all --logger rich", r""),
    ("snakemake --configfile my.yaml --cores all", r"Nothing to be done"),
    ("snakemake -n", r"Nothing to be done"),
    ("qatgrid status", r"^total\s+31\s+31\s+0\s+0\s+0\s+0\s+0$(.|\n)*^ETA: nothing left to run$"),
    ("snakemake --unlock", r"Unlock(ed|ing) working directory"),
    ("snakemake --report results/report.html", r"Report created"),
    ("snakemake --cores 1 gallery", r""),
]


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


def run(command: str, cwd: Path) -> str:
    """A README command as a user's shell runs it, with the environment's snakemake and qatgrid
    first on PATH and this repository's package importable; returns stdout and stderr."""
    env = {
        **os.environ,
        "PATH": f"{Path(SNAKEMAKE).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")])),
    }
    proc = subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True, text=True)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, f"README command failed ({proc.returncode}): {command}\n{output[-3000:]}"
    return output


def test_every_readme_command_is_run_here_or_excused():
    """A command added to the README must be run here or listed with its reason; one listed here
    that the README no longer has fails too (the lists follow the README)."""
    readme = set(readme_commands())
    listed = SLOW | AUDITS | set(PRISTINE) | {c for c, _ in FINISHED}
    assert readme - listed == set(), "README commands neither run by tests/test_readme.py nor excused in SLOW"
    assert listed - readme == set(), "commands tests/test_readme.py runs or excuses that the README no longer has"


@pytest.mark.parametrize("command", sorted(PRISTINE))
def test_readme_commands_on_a_fresh_clone(pristine, command):
    output = run(command, pristine)
    assert re.search(PRISTINE[command], output, re.M), output[-3000:]
    if command.endswith("--json"):
        status = json.loads(output[output.index("{") :])
        assert status["total"]["not started"] == 1345 and status["eta"]["runs_left"] == 1345


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A clone whose config/config.yaml is tests/tiny.yaml merged over the default, as a user's
    small grid would be; the README's commands then build and read it."""
    wf = workflow_copy(tmp_path_factory.mktemp("finished"))
    layers = [(p, yaml.safe_load((REPO / p).read_text())) for p in ("config/config.yaml", "tests/tiny.yaml")]
    (wf / "config" / "config.yaml").write_text(yaml.safe_dump(merge_config_layers(layers)[0], sort_keys=False))
    (wf / "my.yaml").write_text("probe: {grid_bits: 6}\n")  # the tiny grid's own value: nothing changes
    return wf


def test_readme_commands_on_a_finished_grid(finished):
    metrics = finished / "results" / "runs"
    for command, expected in FINISHED:
        output = run(command, finished)
        assert re.search(expected, output, re.M), f"{command}:\n{output[-3000:]}"
        if command == "snakemake results/figures/penalty_law.pdf":
            assert (finished / "results" / "figures" / "penalty_law.pdf").read_bytes()[:5] == b"%PDF-"
            assert 0 < len(list(metrics.rglob("metrics.json"))) < 31  # only the runs the figure needs
        if command.startswith("snakemake all"):
            assert len(list(metrics.rglob("metrics.json"))) == 31
    assert (finished / "results" / "report.html").stat().st_size > 0
    gallery = sorted(p.name for p in (finished / "docs" / "gallery").glob("*.png"))
    assert gallery == sorted(f"{p.stem}.png" for p in (REPO / "docs" / "gallery").glob("*.png"))
