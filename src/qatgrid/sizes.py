"""Model size table, importable without torch (the Snakefile and config checks use it)."""

from __future__ import annotations

HEAD_DIM = 64

# name -> (n_layer, d_model). Names are the total parameter count (tied
# embedding counted once) at the paper's vocabulary of 1024; tests/test_model.py
# checks each within +-10%. The sub-million sizes exist for CPU runs: 0.1M-0.2M scale
# depth only, at width 64 (one attention head); 0.25M is width 128, two query heads
# sharing one key/value head (grouped-query attention, as every GPU size has), the size
# the GPU check's CPU smoke mode compiles.
SIZES: dict[str, tuple[int, int]] = {
    "0.1M": (1, 64),
    "0.16M": (3, 64),
    "0.2M": (4, 64),
    "0.25M": (1, 128),
    "3M": (6, 256),
    "5M": (10, 256),
    "8M": (7, 384),
    "10M": (9, 384),
    "15M": (8, 512),
    "30M": (10, 640),
    "50M": (12, 768),
    "100M": (13, 1024),
    "175M": (15, 1280),
    "250M": (15, 1536),
    "350M": (21, 1536),
}


def head_counts(d_model: int) -> tuple[int, int]:
    """(query heads, key/value heads) at width d_model: heads of HEAD_DIM, half as many KV heads
    (grouped-query attention), at least one of each. The model and the memory model read this."""
    n_head = max(1, d_model // HEAD_DIM)
    return n_head, max(1, n_head // 2)


def size_to_number(name: str) -> float:
    """'15M' -> 15e6; the nominal count a size name promises."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}[name[-1]]
    return float(name[:-1]) * scale
