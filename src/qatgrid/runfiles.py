"""Where each file of a run lives, named once.

Rules, training, the probe, the audit, the status view and the progress records all ask this
module; nothing else spells a run's path. Torch-free and cheap: the Snakefile imports it.

    results/runs/<run_id>/     outputs Snakemake tracks: metrics.json, probe.json; the weights
                               ckpt_prewarmdown.pt, ckpt_final.pt as outputs.weights keeps them
                               (not tracked: choosing to keep fewer reruns nothing); curve.jsonl
                               and tb/ as training goes
    results/state/<run_id>/    resumable state (last.pt, prev.pt and their sha256), outside the
                               declared outputs because Snakemake deletes a failed job's outputs
    results/logs/train/<run_id>.log
    results/trunks/<run_id>/   the shared trunk's state at the run's branch step (qatgrid.trunks),
                               and the curve of the trunk segment that ends there; that segment's
                               resumable state in results/state/trunks/<run_id>/, its log in
                               results/logs/trunks/<run_id>.log
    results/trunks/<trunk>/    with train.trunk_jobs: group, the job that trains a whole group
                               (<trunk>: a member's id with its warmdown level replaced by
                               "trunk"): done.json when it has finished, and staged/<run_id>/,
                               where it writes each member's declared outputs (staged/spec.json:
                               what they were trained with); the member's
                               own (local) job moves them into results/runs/<run_id>/. Its log
                               is results/logs/groups/<trunk>.log
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

CURVE_FILE = "curve.jsonl"
STATE_FILE = "last.pt"
OUTPUT_NAMES = ("probe", "metrics")  # metrics last: its presence means done
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
    """Every file of run `run_id`. With `staged`, the declared outputs (metrics, checkpoints,
    probe) are written there instead, for the run's own job to move into out_dir (GroupFiles)."""

    staged: Path | None = None

    @property
    def out_dir(self) -> Path:
        return self.results / "runs" / self.run_id

    @property
    def outputs_dir(self) -> Path:
        return Path(self.staged) if self.staged is not None else self.out_dir

    @property
    def metrics(self) -> Path:
        return self.outputs_dir / "metrics.json"

    @property
    def ckpt_prewarmdown(self) -> Path:
        """Not a declared output (outputs.weights may drop it): written in place, never staged."""
        return self.out_dir / "ckpt_prewarmdown.pt"

    @property
    def ckpt_final(self) -> Path:
        return self.out_dir / "ckpt_final.pt"

    @property
    def probe(self) -> Path:
        return self.outputs_dir / "probe.json"

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

    @property
    def moved_log(self) -> Path:
        """train.trunk_jobs: group: the log of the job that moves the run's outputs in place."""
        return self.results / "logs" / "outputs" / f"{self.run_id}.log"

    def outputs(self) -> dict[str, str]:
        """The training rule's declared outputs, by name."""
        return {name: str(getattr(self, name)) for name in OUTPUT_NAMES}


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


@dataclass(frozen=True)
class GroupFiles:
    """The files of the job that trains the whole group `trunk` (train.trunk_jobs: group)."""

    trunk: str
    results: Path = Path("results")

    def __post_init__(self) -> None:
        object.__setattr__(self, "results", Path(self.results))

    @property
    def out_dir(self) -> Path:
        return self.results / "trunks" / self.trunk

    @property
    def done(self) -> Path:
        """Written last, listing the members trained: what the members' own jobs wait for."""
        return self.out_dir / "done.json"

    @property
    def spec(self) -> Path:
        """What the staged outputs were trained with (qatgrid.train.trunk_spec), written as the
        job starts: outputs staged under another spec are never kept."""
        return self.out_dir / "staged" / "spec.json"

    def member(self, run_id: str) -> RunFiles:
        """A member's files as the group job writes them: declared outputs staged here."""
        return RunFiles(run_id, self.results, staged=self.out_dir / "staged" / run_id)

    @property
    def log(self) -> Path:
        return self.results / "logs" / "groups" / f"{self.trunk}.log"
