"""Atomic file output: everything is written to a temporary name and renamed into place."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
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
