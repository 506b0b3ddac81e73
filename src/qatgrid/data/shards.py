"""The token shard format of the parameter-golf baseline, and the one reader training uses.

A shard is a 256 x int32 little-endian header [magic, version, token count, 0...]
followed by `count` uint16 tokens. Both sources (the published export and any
text corpus tokenised here) produce these files, so training has one reader.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..io import atomic_path
from ..storage import as_disk_full

MAGIC = 20240520
VERSION = 1
HEADER_INTS = 256
HEADER_BYTES = HEADER_INTS * 4


class ShardError(ValueError):
    """A shard file that is missing, truncated or not in the expected format."""


def read_header(path: str | os.PathLike) -> int:
    """Validate a shard's header against its size; return its token count."""
    path = Path(path)
    if not path.is_file():
        raise ShardError(f"missing token shard: {path}")
    size = path.stat().st_size
    if size < HEADER_BYTES:
        raise ShardError(
            f"{path}: {size} bytes, shorter than the {HEADER_BYTES}-byte shard header (truncated or not a shard)"
        )
    header = np.fromfile(path, dtype="<i4", count=HEADER_INTS)
    if header[0] != MAGIC:
        raise ShardError(f"{path}: magic {int(header[0])}, expected {MAGIC} (not a token shard)")
    if header[1] != VERSION:
        raise ShardError(f"{path}: version {int(header[1])}, expected {VERSION}")
    count = int(header[2])
    expected = HEADER_BYTES + 2 * count
    if count < 0 or size != expected:
        raise ShardError(
            f"{path}: header says {count} tokens ({expected} bytes) but the file has {size} bytes "
            "(truncated or corrupt)"
        )
    return count


def read_shard(path: str | os.PathLike) -> np.ndarray:
    """The shard's tokens, memory-mapped in place (no copy)."""
    count = read_header(path)
    return np.memmap(path, dtype="<u2", mode="r", offset=HEADER_BYTES, shape=(count,))


class ShardWriter:
    """Streaming appender: tokens go to a temporary file; `close()` writes the header
    and renames it into place, so an interrupted job never leaves a shard behind."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._ctx = atomic_path(self.path)
        self._tmp = self._ctx.__enter__()
        self._f = open(self._tmp, "wb")
        self._f.write(b"\0" * HEADER_BYTES)
        self.count = 0

    def append(self, ids) -> None:
        arr = np.asarray(ids)
        if arr.size and (arr.min() < 0 or arr.max() >= 2**16):
            raise ValueError(f"{self.path}: token id outside uint16; data.vocab_size must be <= 65536")
        try:
            self._f.write(arr.astype("<u2", copy=False).tobytes())
        except OSError as e:  # a full disk is named, not a bare errno
            raise as_disk_full(e, self.path, None, self._f.tell()) or e from None
        self.count += int(arr.size)

    def close(self) -> None:
        if self.count >= 2**31:
            self.abort()
            raise ValueError(f"{self.path}: {self.count} tokens do not fit the int32 header; split into shards")
        header = np.zeros(HEADER_INTS, dtype="<i4")
        header[:3] = (MAGIC, VERSION, self.count)
        self._f.seek(0)
        self._f.write(header.tobytes())
        self._f.close()
        self._ctx.__exit__(None, None, None)

    def abort(self) -> None:
        self._f.close()
        try:
            self._ctx.__exit__(RuntimeError, RuntimeError("aborted"), None)
        except RuntimeError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_shard(path: str | os.PathLike, ids) -> None:
    with ShardWriter(path) as w:
        w.append(ids)


class TokenStream:
    """Several memory-mapped shards seen as one sequence: `len()` and slices, which is all
    the batches (stream.py) and `evaluate` use. A slice across a shard boundary is the only copy."""

    def __init__(self, paths):
        self.shards = [read_shard(p) for p in paths]
        if not self.shards:
            raise ShardError("no token shards given")
        self.starts = np.cumsum([0] + [len(s) for s in self.shards])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key):
        if not isinstance(key, slice) or key.step not in (None, 1):
            raise TypeError("TokenStream supports contiguous slices only")
        start, stop, _ = key.indices(len(self))
        if stop <= start:
            return np.empty(0, dtype="<u2")
        i = int(np.searchsorted(self.starts, start, side="right")) - 1
        j = int(np.searchsorted(self.starts, stop, side="left")) - 1
        if i == j:
            return self.shards[i][start - self.starts[i] : stop - self.starts[i]]
        parts = [
            self.shards[k][max(start - self.starts[k], 0) : min(stop, self.starts[k + 1]) - self.starts[k]]
            for k in range(i, j + 1)
        ]
        return np.concatenate(parts)
