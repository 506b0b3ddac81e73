"""Training batches: the training shards read as one stream, as the parameter-golf baseline reads them.

The baseline (`train_gpt.py`: `TokenStream`, `DistributedTokenLoader`; read from its public source)
concatenates the train shards in sorted file-name order and reads them front to back, wrapping to
the first shard after the last. Every optimiser step consumes the next `world_size x grad_accum_steps`
spans of `local_tokens + 1` tokens each; a span gives `local_tokens / seq_len` rows, inputs its first
`local_tokens` tokens and targets the same shifted by one. The extra token of a span is consumed:
the next span starts after it, so spans never overlap and that token is only ever a target. No
sampling, so every run sees the same tokens in the same order whatever its seed; the seed sets only
the initial weights.

Here a step's batch of B rows of L tokens is cut into `spans` (`train.stream_spans`, dividing B)
spans of (B / spans) x L + 1 tokens, one after another, so a step takes T = B x L + spans tokens.
The baseline's loader always makes world_size x grad_accum_steps = 8 spans; one span is the same
loader on one process without gradient accumulation. Step k's tokens start at k x T (mod the stream
length N): a pure function of the step, so a resumed or branched run needs no data state.

A data seed (the `data_seeds` axis) orders the same stream differently: the stream is cut into
N // T step-sized chunks, chunk c covering tokens [c x T, (c + 1) x T), and step k reads chunk
perm[k mod (N // T)], perm a permutation of the chunks drawn from the data seed. Each epoch then
holds the same contiguous token spans as the baseline's (less the N mod T tail), only in another
order, and every data seed's order is drawn the same way. Without the axis a run reads the
baseline's order, the same for every init seed.

`train.batches: random` keeps the earlier sampler instead: windows of L + 1 tokens at random starts
drawn with replacement from a generator keyed on (data seed, else init seed, step).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

BATCHES = ("stream", "random")


def data_folder(tokens) -> str:
    """The folder the training shards were read from (for error messages)."""
    shards = getattr(tokens, "shards", None)
    name = getattr(shards[0], "filename", None) if shards else None
    return str(Path(name).parent) if name else "the training tokens"


def step_tokens(batch_size: int, seq_len: int, spans: int = 1) -> int:
    """Tokens one step consumes from the stream: `spans` spans of (batch_size / spans) x seq_len + 1."""
    if spans < 1 or batch_size % spans:
        raise ValueError(f"train.stream_spans ({spans}) must divide the batch size ({batch_size} sequences)")
    return batch_size * seq_len + spans


def check_length(tokens, need: int, what: str) -> None:
    if len(tokens) < need:
        raise ValueError(
            f"{data_folder(tokens)}: the training shards hold {len(tokens)} tokens, fewer than one batch needs "
            f"({need} tokens: {what}); use more training data or a smaller train.batch_size / train.seq_len"
        )


@lru_cache(maxsize=16)
def chunk_order(data_seed: int, n_chunks: int) -> np.ndarray:
    """The permutation of step-sized chunks a data seed reads them in (torch's generator: torch is pinned)."""
    return torch.randperm(n_chunks, generator=torch.Generator().manual_seed(data_seed)).numpy()


def stream_start(step: int, n_tokens: int, tokens_per_step: int, data_seed: int | None = None) -> int:
    """Position in the stream of step `step`'s first token, in O(1) (after one permutation per data seed)."""
    if data_seed is None:
        return step * tokens_per_step % n_tokens
    n_chunks = n_tokens // tokens_per_step
    return int(chunk_order(data_seed, n_chunks)[step % n_chunks]) * tokens_per_step


def read_wrapped(tokens, start: int, length: int) -> np.ndarray:
    """`length` tokens from `start`, continuing at the stream's beginning past its end (length <= len)."""
    n = len(tokens)
    stop = start + length
    if stop <= n:
        return np.asarray(tokens[start:stop])
    return np.concatenate([tokens[start:n], tokens[0 : stop - n]])


def stream_batch(
    tokens, step: int, batch_size: int, seq_len: int, data_seed: int | None = None, spans: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs and targets (int64, batch_size x seq_len) of step `step` read from the stream."""
    t = step_tokens(batch_size, seq_len, spans)
    check_length(tokens, t, f"{batch_size} x {seq_len} + {spans}")
    chunk = read_wrapped(tokens, stream_start(step, len(tokens), t, data_seed), t).astype(np.int64)
    rows = chunk.reshape(spans, t // spans)
    return rows[:, :-1].reshape(batch_size, seq_len), rows[:, 1:].reshape(batch_size, seq_len)


def random_windows(tokens, seed: int, step: int, batch_size: int, seq_len: int) -> torch.Tensor:
    """`train.batches: random`: windows of seq_len + 1 tokens at starts drawn with replacement from a
    generator keyed on (seed, step), exactly the batches of the earlier sampler."""
    check_length(tokens, seq_len + 2, f"one window of {seq_len} + 1 and a start to draw")
    g = torch.Generator().manual_seed(seed * 1_000_003 + step)
    starts = torch.randint(0, len(tokens) - seq_len - 1, (batch_size,), generator=g).numpy()
    return torch.from_numpy(np.stack([tokens[s : s + seq_len + 1] for s in starts]).astype(np.int64))


def to_device(xy: torch.Tensor, device: torch.device) -> torch.Tensor:
    if device.type == "cuda":  # pinned host memory: the copy overlaps with the running step
        xy = xy.pin_memory()
    return xy.to(device, non_blocking=True)


def train_batch(
    tokens, train_cfg: dict, run, step: int, batch_size: int, seq_len: int, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """The batch of `run` at `step` under `train.batches` (a pure function of the step: resumable)."""
    if train_cfg["batches"] == "random":
        seed = run.data_seed if run.data_seed is not None else run.seed
        xy = to_device(random_windows(tokens, seed, step, batch_size, seq_len), device)
        return xy[:, :-1], xy[:, 1:]
    x, y = stream_batch(tokens, step, batch_size, seq_len, run.data_seed, train_cfg["stream_spans"])
    xy = to_device(torch.from_numpy(np.stack([x, y])), device)
    return xy[0], xy[1]
