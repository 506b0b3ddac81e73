"""What durable renames cost: qatgrid.io.atomic_path (fsync of the file before the rename, of the
folder after) against the same write renamed without either, as atomic_path was before.

Two writes: a 100M-size model's weights (torch.save of its state dict, ~390 MB: a run's
ckpt_final.pt) and many small JSON files (a metrics.json-sized record), each the median of
several, alternating the two kinds so both see the same disk. Writes go to a folder on the file
system of results/ (--dir). Prints and writes benchmarks/results/fsync-<machine>.{json,md}.

    python benchmarks/bench_fsync.py [--repeats 5] [--small 200] [--dir results/bench-fsync]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from common import REPO, RESULTS, machine_name


@contextlib.contextmanager
def rename_only(path: Path):
    """atomic_path without the fsyncs: the baseline."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    yield Path(tmp)
    os.replace(tmp, path)


def main() -> None:
    import torch

    from qatgrid.checkpoint import model_state
    from qatgrid.io import atomic_path
    from qatgrid.model import GPT, ModelConfig, count_params

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--small", type=int, default=200, help="small files per repeat")
    ap.add_argument("--dir", type=Path, default=REPO / "results" / "bench-fsync")
    args = ap.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)

    model = GPT(ModelConfig.from_size("100M", vocab_size=1024, seq_len=1024))
    weights = {"model": model_state(model), "run_id": "bench", "size": "100M"}
    record = {"curve": [{"step": s, "train_loss": 3.0, "val_loss": 3.1} for s in range(0, 3000, 50)], "run_id": "x"}
    text = json.dumps(record, indent=2) + "\n"
    kinds = {"rename only": rename_only, "atomic_path (fsync)": atomic_path}
    big = {k: [] for k in kinds}
    small = {k: [] for k in kinds}
    for _ in range(args.repeats):
        for name, ctx in kinds.items():
            path = args.dir / "ckpt_final.pt"
            t0 = time.perf_counter()
            with ctx(path) as tmp:
                torch.save(weights, tmp)
            big[name].append(time.perf_counter() - t0)
            os.sync()  # the next write starts with nothing dirty, whichever came before
            t0 = time.perf_counter()
            for i in range(args.small):
                with ctx(args.dir / f"metrics{i % 20}.json") as tmp:
                    tmp.write_text(text)
            small[name].append((time.perf_counter() - t0) / args.small)
            os.sync()
    size = (args.dir / "ckpt_final.pt").stat().st_size
    shutil.rmtree(args.dir)
    out = {
        "machine": machine_name(),
        "params": count_params(model),
        "checkpoint_bytes": size,
        "small_bytes": len(text),
        "repeats": args.repeats,
        "small_per_repeat": args.small,
        "checkpoint_s": {k: statistics.median(v) for k, v in big.items()},
        "small_ms": {k: 1000 * statistics.median(v) for k, v in small.items()},
        "raw": {"checkpoint_s": big, "small_s": small},
    }
    base, durable = "rename only", "atomic_path (fsync)"
    md = [
        f"# Durable renames on {out['machine']}",
        "",
        f"Median of {args.repeats}; writes to the file system of {os.path.relpath(args.dir.parent, REPO)}/ "
        "(`python benchmarks/bench_fsync.py`).",
        "",
        "| write | rename only | with fsync (file, then folder) | cost |",
        "|---|---|---|---|",
        f"| 100M weights, {size / 1e6:.0f} MB | {out['checkpoint_s'][base]:.2f} s | "
        f"{out['checkpoint_s'][durable]:.2f} s | {out['checkpoint_s'][durable] / out['checkpoint_s'][base]:.2f}x |",
        f"| small JSON, {len(text):,} B | {out['small_ms'][base]:.3f} ms | {out['small_ms'][durable]:.3f} ms | "
        f"+{out['small_ms'][durable] - out['small_ms'][base]:.3f} ms a file |",
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"fsync-{out['machine']}.json").write_text(json.dumps(out, indent=2) + "\n")
    (RESULTS / f"fsync-{out['machine']}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
