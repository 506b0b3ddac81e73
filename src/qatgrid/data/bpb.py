"""Bytes per target token, so that loss converts to bits per byte of text.

The data step writes, beside the validation shards, the UTF-8 byte count of every
validation token (`val_bytes.npy`); training sums it over exactly the targets it
evaluates. Two tokenizers:
- SentencePiece (the parameter-golf export), counted as the baseline counts:
  byte-fallback pieces are 1 byte, control/unknown/unused pieces 0, other pieces
  their UTF-8 length without the leading '▁', which adds one byte unless the
  previous token is a control/unknown/unused (boundary) token.
- byte-level BPE (`tokenizers`, the text path): each token's bytes through the
  byte-to-character table of its ByteLevel alphabet; special tokens count 0.
"""

from __future__ import annotations

import math

import numpy as np

SPACE = "\u2581"


def sentencepiece_luts(model_path: str):
    """(base_bytes, has_leading_space, is_boundary) arrays indexed by token id."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_path))
    n = sp.vocab_size()
    base = np.zeros(n, dtype=np.int64)
    space = np.zeros(n, dtype=bool)
    boundary = np.ones(n, dtype=bool)
    for i in range(n):
        if sp.is_control(i) or sp.is_unknown(i) or sp.is_unused(i):
            continue
        boundary[i] = False
        if sp.is_byte(i):
            base[i] = 1
            continue
        piece = sp.id_to_piece(i)
        if piece.startswith(SPACE):
            space[i] = True
            piece = piece[1:]
        base[i] = len(piece.encode("utf-8"))
    return base, space, boundary


def sentencepiece_token_bytes(ids: np.ndarray, luts) -> np.ndarray:
    """Byte count of each position as a target; position 0 has no previous token and
    is counted as if it followed a boundary (it is never a target in evaluation)."""
    base, space, boundary = luts
    ids = np.asarray(ids, dtype=np.int64)
    prev_boundary = np.concatenate([[True], boundary[ids[:-1]]]) if ids.size else np.zeros(0, bool)
    return (base[ids] + (space[ids] & ~prev_boundary)).astype(np.uint16)


def _byte_of_char() -> dict[str, int]:
    """The ByteLevel alphabet: printable bytes map to themselves, the rest to 256+k."""
    keep = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    chars, extra = {}, 0
    for b in range(256):
        if b in keep:
            chars[chr(b)] = b
        else:
            chars[chr(256 + extra)] = b
            extra += 1
    return chars


def bytelevel_lut(tok) -> np.ndarray:
    """Bytes of each token id of a byte-level BPE `tokenizers.Tokenizer` (special tokens 0)."""
    table = _byte_of_char()
    special = {t.content for t in tok.get_added_tokens_decoder().values()}
    lut = np.zeros(tok.get_vocab_size(), dtype=np.uint16)
    for piece, i in tok.get_vocab().items():
        if piece not in special:
            if any(c not in table for c in piece):
                raise ValueError(
                    f"token {piece!r} is not in the ByteLevel alphabet; the text path needs a byte-level BPE tokenizer"
                )
            lut[i] = len(piece)
    return lut


def bits_per_byte(mean_loss_nats: float, n_tokens: int, n_bytes: int) -> float:
    return mean_loss_nats / math.log(2) * n_tokens / n_bytes
