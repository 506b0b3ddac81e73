"""Progress of one training run: its log lines, its curve file, its TensorBoard events.

The curve file (`results/runs/<run_id>/curve.jsonl`, qatgrid.runfiles) gets one JSON record per logged step,
flushed as it is written, so a killed run keeps what it had and `qatgrid status` can read
runs in flight. A resumed run first drops the records beyond its checkpoint's step (they
will be logged again) and a half-written last line, so the file ends with every logged
step exactly once. Nothing here imports torch unless TensorBoard is switched on.
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path

from .data.bpb import bits_per_byte
from .io import atomic_path
from .runfiles import RunFiles
from .storage import as_disk_full

log = logging.getLogger("qatgrid.train")


def hms(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def read_curve(path: Path, run_id: str | None = None) -> list[dict]:
    """The records of a curve file; a half-written last line is dropped. A record of another
    run (the folder holds a stale or misplaced file) is an error naming the file."""
    if not path.exists():
        return []
    lines = path.read_text().splitlines()
    records = []
    for i, line in enumerate(lines):
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if i == len(lines) - 1:  # killed mid-write
                break
            raise ValueError(f"{path}: line {i + 1} is not a JSON record") from None
    for r in records:
        if run_id is not None and r.get("run_id") != run_id:
            raise ValueError(f"{path} holds the curve of run {r.get('run_id')!r}, not {run_id!r}; move or delete it")
    return records


def truncate_curve(path: Path, run_id: str, step: int) -> int:
    """Keep only the records up to `step` (where training resumes), rewritten atomically;
    returns the last step kept (0 for none)."""
    records = [r for r in read_curve(path, run_id) if r["step"] <= step]
    with atomic_path(path) as tmp:
        tmp.write_text("".join(json.dumps(r) + "\n" for r in records))
    return records[-1]["step"] if records else 0


def finite(x: float) -> float | None:
    return x if math.isfinite(x) else None  # JSON has no NaN


class Progress:
    """Log lines, curve records and (optionally) TensorBoard scalars of one run.

    Throughput and ETA count only this process's steps (a resumed run does not borrow the
    speed of an earlier node); elapsed includes the time of earlier attempts."""

    def __init__(
        self,
        run_id: str,
        files: RunFiles,
        steps: int,
        tokens_per_step: int,
        val_split: dict,
        start_step: int = 0,
        elapsed: float = 0.0,
        tensorboard: bool = False,
    ):
        self.run_id, self.steps, self.tokens_per_step, self.val_split = run_id, steps, tokens_per_step, val_split
        self.start_step, self.elapsed0, self.t0 = start_step, elapsed, time.perf_counter()
        self.path = files.curve
        self.last_step = truncate_curve(self.path, run_id, start_step)
        self.file = open(self.path, "a")
        self.tb = None
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # needs the optional tensorboard package

            # purge_step hides events a killed attempt wrote past the checkpoint
            self.tb = SummaryWriter(str(files.tensorboard), purge_step=start_step + 1 if start_step else None)

    def adopt(self, records: list[dict]) -> None:
        """Write a shared trunk's records (steps this run did not train itself) as this run's,
        those the file does not hold yet: a branch's curve is the trunk's part, then its own."""
        for record in records:
            if record["step"] > self.last_step:
                self.write({**record, "run_id": self.run_id})

    def log(self, entry: dict) -> dict:
        """Record one logged step ({step, train_loss[, val_loss]}); returns the curve record."""
        step, now = entry["step"], time.perf_counter()
        run_time = now - self.t0
        done = step - self.start_step
        tps = done * self.tokens_per_step / run_time if run_time > 0 else float("nan")
        eta = (self.steps - step) * run_time / done if done > 0 else None
        record = {
            "run_id": self.run_id,
            "step": step,
            "steps": self.steps,
            "train_loss": finite(entry["train_loss"]),
            "tokens_per_s": finite(tps),
            "elapsed_s": self.elapsed0 + run_time,
            "eta_s": eta,
            "time": time.time(),
        }
        log.info(
            "%s step %d/%d train_loss=%.4f tok/s=%.0f elapsed=%s eta=%s",
            self.run_id,
            step,
            self.steps,
            entry["train_loss"],
            tps,
            hms(record["elapsed_s"]),
            hms(eta),
        )
        if "val_loss" in entry:
            record["val_loss"] = finite(entry["val_loss"])
            record["val_bpb"] = finite(
                bits_per_byte(entry["val_loss"], self.val_split["tokens"], self.val_split["bytes"])
            )
            log.info(
                "%s step %d/%d val_loss=%.4f val_bpb=%.4f",
                self.run_id,
                step,
                self.steps,
                entry["val_loss"],
                record["val_bpb"] if record["val_bpb"] is not None else float("nan"),
            )
        self.write(record)
        return record

    def write(self, record: dict) -> None:
        """One record to the curve file (flushed: a kill keeps it) and to TensorBoard."""
        try:
            self.file.write(json.dumps(record) + "\n")
            self.file.flush()
        except OSError as e:  # a full disk is named, not a bare errno
            raise as_disk_full(e, self.path, None) or e from None
        self.last_step = record["step"]
        if self.tb is not None:
            for key, tag in (
                ("train_loss", "loss/train"),
                ("val_loss", "loss/val"),
                ("val_bpb", "bpb/val"),
                ("tokens_per_s", "throughput/tokens_per_s"),
            ):
                if record.get(key) is not None:
                    self.tb.add_scalar(tag, record[key], record["step"])
            self.tb.flush()

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()
