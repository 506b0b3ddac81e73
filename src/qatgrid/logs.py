"""A job's log: where its records and an uncaught exception's traceback go (setup_logging), reading a
log back (tail_lines, and the traceback that ends a failed job's: split_traceback, error_line), and
ending a finished job's process with its log flushed (exit_without_teardown)."""

from __future__ import annotations

import os
import re
from pathlib import Path


def setup_logging(log_path: str | os.PathLike | None) -> None:
    """Send the package's log records to a job's log file (and stderr), and an uncaught exception's
    traceback to that log file as well as stderr.

    Snakemake points users at a job's `log:` file, and on SLURM a job's stderr lands in the
    scheduler's own output file: without this, the log of a failed job would stop at its last
    record and the reason would be elsewhere. `qatgrid status` shows the traceback's last line
    (`error_line`) for a failed run."""
    import logging
    import sys

    handlers = [logging.StreamHandler()]
    if log_path:
        Path(log_path).parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_path, mode="a"))
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s", handlers=handlers, force=True
    )
    if log_path:
        sys.excepthook = _log_uncaught(Path(log_path), sys.__excepthook__)


def _log_uncaught(log_path: Path, stderr_hook):
    def hook(exc_type, exc, tb):
        import traceback

        try:
            with open(log_path, "a") as f:
                f.write("".join(traceback.format_exception(exc_type, exc, tb)))
        except OSError:
            pass  # the log's folder is gone: stderr still gets the traceback
        stderr_hook(exc_type, exc, tb)

    return hook


def tail_lines(path: str | os.PathLike, n: int | None = None) -> list[str]:
    """The last `n` lines of a file (all lines of its last 64 KiB when n is None); [] if absent."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 65536))
            lines = f.read().decode("utf-8", "replace").splitlines()
    except FileNotFoundError:
        return []
    return lines if n is None else lines[-n:] if n > 0 else []


TRACEBACK_START = "Traceback (most recent call last):"
LOG_RECORD = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")  # setup_logging's records start with asctime


def split_traceback(lines: list[str]) -> tuple[list[str], str | None]:
    """A job log's lines before the traceback that ends it, and that traceback's exception line
    ("ShardError: ... truncated": the first unindented line after the last traceback's frames).
    No such traceback (none, or log records follow it: a later attempt ran on): (lines, None)."""
    starts = [i for i, line in enumerate(lines) if line.startswith(TRACEBACK_START)]
    if not starts:
        return lines, None
    after = lines[starts[-1] + 1 :]
    if any(LOG_RECORD.match(line) for line in after):
        return lines, None
    error = next((line for line in after if line.strip() and not line[0].isspace()), None)
    if error is None:
        return lines, None
    # a chain of tracebacks ("During handling of the above exception ...") starts at the first
    # traceback after the last log record
    last_record = max((i for i in range(starts[-1]) if LOG_RECORD.match(lines[i])), default=-1)
    first = min(i for i in starts if i > last_record)
    return lines[:first], error


def error_line(lines: list[str]) -> str | None:
    """The exception line of the traceback that ends a job's log, or None (see split_traceback)."""
    return split_traceback(lines)[1]


def exit_without_teardown() -> None:
    """End a finished job's process now: flush and close the log handlers and the standard
    streams, then os._exit(0), skipping the interpreter's teardown.

    Tearing down an interpreter that imported torch takes ~0.45 s on a 2-core CPU (0.9 s to
    import it), a seventh of a CPU-miniature training job, and does nothing a finished job needs:
    its outputs are written and closed by then (atomic_path). Call it last, only on success: an
    exception must still reach the interpreter so the job fails with its traceback."""
    import logging
    import sys

    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)
