"""Where each file of a run lives, named once.

Rules, training, the probe, the audit, the status view and the progress records all ask this
module; nothing else spells a run's path. Torch-free and cheap: the Snakefile imports it.

    results/runs/<run_id>/     outputs Snakemake tracks: metrics.json, ckpt_prewarmdown.pt,
                               ckpt_final.pt, probe.json; curve.jsonl and tb/ as training goes
    results/state/<run_id>/    resumable state (last.pt, prev.pt and their sha256), outside the
                               declared outputs because Snakemake deletes a failed job's outputs
    results/logs/train/<run_id>.log
    results/trunks/<run_id>/   the shared trunk's state at the run's branch step (qatgrid.trunks),
                               and the curve of the trunk segment that ends there; that segment's
                               resumable state in results/state/trunks/<run_id>/, its log in
                               results/logs/trunks/<run_id>.log
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CURVE_FILE = "curve.jsonl"
STATE_FILE = "last.pt"
PREVIOUS_STATE_FILE = "prev.pt"


@dataclass(frozen=True)
class Located:
    """Files named from a run id under a results folder. `run_id` may be a Snakemake wildcard
    ("{run}"): the rules take their patterns from here too."""

    run_id: str
    results: Path = Path("results")

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", Path(self.results))

    @property
    def state(self) -> Path:
        return self.state_dir / STATE_FILE

    def activity(self) -> tuple[Path, ...]:
        """What a job in flight keeps touching: its curve, its log, its state checkpoint."""
        return self.curve, self.log, self.state


@dataclass(frozen=True)
class RunFiles(Located):
    """Every file of run `run_id`."""

    @property
    def out_dir(self) -> Path:
        return self.results / "runs" / self.run_id

    @property
    def metrics(self) -> Path:
        return self.out_dir / "metrics.json"

    @property
    def ckpt_prewarmdown(self) -> Path:
        return self.out_dir / "ckpt_prewarmdown.pt"

    @property
    def ckpt_final(self) -> Path:
        return self.out_dir / "ckpt_final.pt"

    @property
    def probe(self) -> Path:
        return self.out_dir / "probe.json"

    @property
    def curve(self) -> Path:
        return self.out_dir / CURVE_FILE

    @property
    def tensorboard(self) -> Path:
        return self.out_dir / "tb"

    @property
    def state_dir(self) -> Path:
        return self.results / "state" / self.run_id

    @property
    def log(self) -> Path:
        return self.results / "logs" / "train" / f"{self.run_id}.log"

    def outputs(self) -> dict[str, str]:
        """The training rule's declared outputs, by name."""
        names = ("metrics", "ckpt_prewarmdown", "ckpt_final", "probe")
        return {name: str(getattr(self, name)) for name in names}


@dataclass(frozen=True)
class TrunkFiles(Located):
    """The files of the shared-trunk segment that ends at run `run_id`'s branch step."""

    @property
    def out_dir(self) -> Path:
        return self.results / "trunks" / self.run_id

    @property
    def branch_state(self) -> Path:
        """The training state at the branch step: the segment's output, its members' input."""
        return self.out_dir / "branch.pt"

    @property
    def branch_checksum(self) -> Path:
        return self.out_dir / "branch.pt.sha256"

    @property
    def curve(self) -> Path:
        return self.out_dir / CURVE_FILE

    @property
    def state_dir(self) -> Path:
        return self.results / "state" / "trunks" / self.run_id

    @property
    def log(self) -> Path:
        return self.results / "logs" / "trunks" / f"{self.run_id}.log"
