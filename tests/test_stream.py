"""Training batches read as one stream (qatgrid.data.stream), against a sequential reader written
from the parameter-golf baseline's loader semantics; the random-window option; bad input."""

import glob
from pathlib import Path

import numpy as np
import pytest
import torch

from qatgrid.config import schema_defaults
from qatgrid.data import data_files
from qatgrid.data.shards import HEADER_BYTES, TokenStream, write_shard
from qatgrid.data.stream import chunk_order, stream_batch, train_batch
from qatgrid.runs import Run

TRAIN_DEFAULTS = schema_defaults("train")  # the train keys the data stream reads, as the schema fills them

CPU = torch.device("cpu")
SHARD_SIZES = (1000, 37, 523)  # small shards: batches cross their boundaries and wrap often


class SequentialReader:
    """The baseline's reader, as its source describes it: shards in sorted file-name order, read
    front to back and round again; `take(n)` consumes exactly n tokens. A step: for each of
    `accum` micro-steps, `take(world * (local + 1))`, rank r's span the r-th `local + 1` of it,
    its rows `span[:-1]` (inputs) and `span[1:]` (targets) cut into seq_len."""

    def __init__(self, pattern: str):
        self.files = sorted(glob.glob(pattern))
        self.file, self.pos = 0, 0
        self.tokens = self.load(0)

    def load(self, i: int) -> np.ndarray:
        return np.fromfile(self.files[i], dtype="<u2", offset=HEADER_BYTES)

    def take(self, n: int) -> np.ndarray:
        out = []
        while n > 0:
            if self.pos >= len(self.tokens):
                self.file = (self.file + 1) % len(self.files)
                self.tokens, self.pos = self.load(self.file), 0
                continue
            k = min(n, len(self.tokens) - self.pos)
            out.append(self.tokens[self.pos : self.pos + k])
            self.pos += k
            n -= k
        return np.concatenate(out)

    def step(self, batch_size: int, seq_len: int, world: int, accum: int):
        local = batch_size * seq_len // (world * accum)
        xs, ys = [], []
        for _ in range(accum):
            chunk = self.take(world * (local + 1)).astype(np.int64)
            for rank in range(world):
                span = chunk[rank * (local + 1) : (rank + 1) * (local + 1)]
                xs.append(span[:-1].reshape(-1, seq_len))
                ys.append(span[1:].reshape(-1, seq_len))
        return np.concatenate(xs), np.concatenate(ys)


@pytest.fixture(scope="module")
def export(tmp_path_factory) -> Path:
    """Three shards in the export's format and names, written out of order."""
    d = tmp_path_factory.mktemp("export")
    rng = np.random.default_rng(0)
    for i in (2, 0, 1):
        write_shard(d / f"fineweb_train_{i:06d}.bin", rng.integers(0, 1024, SHARD_SIZES[i]))
    return d


def stream_of(d: Path) -> TokenStream:
    # The order load_data reads: meta.json lists data_files' train shards, which is sorted name order.
    names = data_files({"source": "parameter-golf", "parameter_golf": {"train_shards": 3}})["train"]
    assert names == sorted(names) == [Path(p).name for p in sorted(glob.glob(str(d / "fineweb_train_*.bin")))]
    return TokenStream([d / n for n in names])


@pytest.mark.parametrize(
    "batch_size, seq_len, world, accum",
    [(4, 16, 1, 1), (8, 8, 8, 1), (8, 8, 1, 8), (8, 8, 2, 4), (6, 32, 2, 1), (3, 5, 1, 3), (2, 300, 1, 1)],
)
def test_stream_equals_the_baselines_sequential_reader(export, batch_size, seq_len, world, accum):
    tokens = stream_of(export)
    spans = world * accum
    steps = 3 * len(tokens) // (batch_size * seq_len + spans) + 2  # round the stream three times
    reader = SequentialReader(str(export / "fineweb_train_*.bin"))
    expected = [reader.step(batch_size, seq_len, world, accum) for _ in range(steps)]
    # Each step computed fresh, in reverse order: a pure function of the step.
    for k in reversed(range(steps)):
        x, y = stream_batch(tokens, k, batch_size, seq_len, spans=spans)
        assert x.shape == y.shape == (batch_size, seq_len) and x.dtype == np.int64
        assert np.array_equal(x, expected[k][0]) and np.array_equal(y, expected[k][1]), k


def test_a_data_seed_permutes_step_sized_chunks_of_the_same_stream(export):
    tokens = stream_of(export)
    b, s, spans = 4, 16, 2
    t = b * s + spans
    n = len(tokens) // t

    def chunks(data_seed, steps):
        return [np.concatenate(stream_batch(tokens, k, b, s, data_seed, spans)).tobytes() for k in range(steps)]

    baseline = chunks(None, n)  # the first epoch's chunks start at multiples of t: the data seed's grid
    one, two = chunks(1, 2 * n), chunks(2, n)
    assert sorted(one[:n]) == sorted(two) == sorted(baseline)  # the same chunks, once each per epoch
    assert one[:n] != baseline and two != baseline and one[:n] != two
    assert one[n:] == one[:n]  # the next epoch repeats the order
    assert chunks(1, n) == one[:n]  # a fixed order
    assert list(chunk_order(1, n)) != list(range(n))


def test_init_seeds_share_the_stream_data_seeds_do_not(export):
    tokens, cfg = stream_of(export), {**TRAIN_DEFAULTS, "batches": "stream"}

    def batches(run):
        return [torch.cat(train_batch(tokens, cfg, run, k, 4, 16, CPU)) for k in range(20)]

    seed0, seed7 = batches(Run("p", 6, "0.1M", 0.33, 1.0, 0)), batches(Run("p", 6, "0.1M", 0.33, 1.0, 7))
    assert all(torch.equal(a, b) for a, b in zip(seed0, seed7))
    d0 = batches(Run("p", 6, "0.1M", 0.33, 1.0, 0, data_seed=0))
    d1 = batches(Run("p", 6, "0.1M", 0.33, 1.0, 7, data_seed=1))
    assert all(torch.equal(a, b) for a, b in zip(d0, batches(Run("p", 6, "0.1M", 0.33, 1.0, 5, data_seed=0))))
    assert sum(torch.equal(a, b) for a, b in zip(d0, d1)) < 5  # 24 chunks: two orders agree by chance now and then
    assert not all(torch.equal(a, b) for a, b in zip(d0, seed0))
    x, y = train_batch(tokens, TRAIN_DEFAULTS, Run("p", 6, "0.1M", 0.33, 1.0, 0), 3, 4, 16, CPU)  # default: stream
    assert torch.equal(torch.cat([x, y]), seed0[3])


def earlier_get_batch(tokens, seed, step, batch_size, seq_len):
    """The sampler training used before the stream (random windows keyed on (seed, step))."""
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(tokens) - seq_len - 1, (batch_size,), generator=g).numpy()
    window = torch.from_numpy(np.stack([tokens[s : s + seq_len + 1] for s in starts]).astype(np.int64))
    return window[:, :-1], window[:, 1:]


def test_random_option_keeps_the_earlier_batches(export):
    tokens, cfg = stream_of(export), {**TRAIN_DEFAULTS, "batches": "random"}
    for run, key in ((Run("p", 6, "0.1M", 0.33, 1.0, 3), 3), (Run("p", 6, "0.1M", 0.33, 1.0, 3, data_seed=5), 5)):
        for k in (0, 1, 17):
            x, y = train_batch(tokens, cfg, run, k, 4, 16, CPU)
            ex, ey = earlier_get_batch(tokens, key, k, 4, 16)
            assert torch.equal(x, ex) and torch.equal(y, ey)


def test_a_stream_shorter_than_one_batch_is_named(tmp_path):
    write_shard(tmp_path / "fineweb_train_000000.bin", np.arange(100))
    tokens = TokenStream([tmp_path / "fineweb_train_000000.bin"])
    with pytest.raises(
        ValueError,
        match=rf"{tmp_path}: the training shards hold 100 tokens, fewer than one batch "
        r"needs \(129 tokens: 4 x 32 \+ 1\)",
    ):
        train_batch(tokens, TRAIN_DEFAULTS, Run("p", 6, "0.1M", 0.33, 1.0, 0), 0, 4, 32, CPU)
    with pytest.raises(ValueError, match=r"hold 100 tokens, fewer than one batch needs \(101 tokens"):
        train_batch(tokens, {**TRAIN_DEFAULTS, "batches": "random"}, Run("p", 6, "0.1M", 0.33, 1.0, 0), 0, 4, 99, CPU)
    with pytest.raises(ValueError, match=r"train.stream_spans \(3\) must divide the batch size \(4 sequences\)"):
        stream_batch(tokens, 0, 4, 8, spans=3)
