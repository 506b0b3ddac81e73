"""Atomic file output: everything is written to a temporary name and renamed into place."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, needed: int | None = None):
    """Yield a temporary path beside `path`; rename it onto `path` only if the block succeeds.

    Durable: the file's data reach the disk (fsync) before the rename, and the rename itself
    (fsync of the folder) after it, so a node crash or a file-server failover never leaves a
    renamed file whose data were not written. A write that fails for lack of space raises
    qatgrid.storage.DiskFull naming `path`, the bytes `needed` (checked before writing when
    given) and the space left; the temporary file is removed and `path` keeps what it held."""
    from .storage import as_disk_full, check_fits

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if needed is not None:
        check_fits(path, needed)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        fsync_file(tmp)
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        written = os.path.getsize(tmp) if os.path.exists(tmp) else None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        full = as_disk_full(exc, path, needed, written)
        if full is not None and full is not exc:
            raise full from None  # one line that says it all, not torch's writer's
        raise


def fsync_file(path: str | os.PathLike) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_dir(path: str | os.PathLike) -> None:
    """Make a rename in `path` durable; file systems that cannot sync a folder are left as they are."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        if e.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF):
            raise
    finally:
        os.close(fd)


def write_json(path: str | os.PathLike, obj) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(obj, indent=2, sort_keys=True) + "\n")


def read_json(path: str | os.PathLike):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"missing file: {path}")
    return json.loads(path.read_text())


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


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
