"""The first GPU, in one command: is the CUDA fast path correct, how fast is it against the
project's targets, does a small grid run through the pipeline, and what does a training job cost
(the run costs the audit reads). On one CUDA GPU it takes ~15 minutes by its cost model
(gpu_costs.py, printed at the start) and at most its budget, the sum of the time boxes (~23).

    python benchmarks/gpu_check.py                    # one CUDA GPU; without one it says so and exits 2
    python benchmarks/gpu_check.py --smoke            # CPU, tiny sizes and steps: 2-3 minutes of CPU
    python benchmarks/gpu_check.py --only correctness packing   # some sections again (results merged)
    python benchmarks/gpu_check.py --budget 900       # another budget: every section's time box scaled

Sections, in this order, each in a fresh process with its own time box (time a section leaves
unused goes to the next; a section never eats into the boxes of those after it):

  device       GPU, driver, torch, CUDA, cuDNN and Triton versions, memory; bf16 support (a GPU
               without it, pre-Ampere, runs the fast path in fp32, and the check says so); on
               CUDA it fails at once without a C compiler, Python.h or a libcuda Triton finds
  precompile   every training and evaluation graph the later sections use (3M, 15M, 50M, 100M;
               FP16 and INT6) into the shared compile cache, one fresh process per shape,
               started largest first as the GPU's memory allows
  pipeline     a small grid (FP16/INT6 x 2 warmdowns at 3M on the embedded corpus) through
               Snakemake, training jobs on the GPU, to its tables
  correctness  3M FP16 and INT6 trained side by side on the fast path (bf16 autocast, torch.compile)
               and in exact fp32 eager (TF32 off), same initial weights and batches: loss curves and
               validation loss agree; the compiled fake quantiser's weights lie on the grid; the
               compiled QAT step's gradients match eager's (and differ less than dropping QAT would)
  packing      aggregate tokens/s of K = 8 concurrent 3M INT6 runs over one run alone
  compile      whole INT6 training jobs with an empty and then a warm compile cache (3M, 15M):
               the first compiled step of each, and the run costs the audit reads
  memory       two INT6 steps of 350M at config/paper.yaml's batch and sequence length, in the
               micro-batches its plan gives (train.gpu_memory_gib): peak allocated memory against
               the memory model's (qatgrid.memory)
  speed:<size> tokens/s, MFU against the bf16 peak, QAT overhead (INT6 step / FP16 step) at 15M,
               50M and 100M, at config/paper.yaml's batch and sequence length

A section that raises or runs out of time is reported, and the script exits 1 at the end, after
writing what it measured; so does a correctness check out of tolerance. A size that runs out of GPU
memory is reported as OOM and the others go on. Speed figures are printed against their targets
but do not change the exit status.

The sections live in gpu_sections.py and gpu_correctness.py, their cost model in gpu_costs.py; this
script plans them, runs each in its own process and reports.

Writes benchmarks/results/<machine>.json (its "run_cost" section, sizes merged into what was
there, and a "gpu_check" section; bench.py's sections are kept) and <machine>-gpu_check.md.
--smoke writes <machine>-smoke.json and .md instead and never touches the committed results.
In smoke mode the precompile and correctness sections compile a grouped-query size (0.25M)
through CPU Inductor (aot_eager where there is no C compiler); the other sections run eager (with
bf16 autocast, as the fast path). benchmarks/README.md says what the smoke mode covers and what not.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

from common import REPO, RESULTS, TARGET_WARM_OVER_COLD, TARGETS, load_config
from gpu_correctness import TOL, section_correctness
from gpu_costs import cost_lines, with_boxes
from gpu_sections import (
    Record,
    fast_settings,
    section_compile,
    section_device,
    section_memory,
    section_packing,
    section_pipeline,
    section_precompile,
    section_speed,
    toolchain,
)

PAPER_TRAIN = load_config([REPO / "config" / "paper.yaml"])["train"]  # as `--configfile config/paper.yaml`
DEFAULT_CONFIG_TRAIN = load_config()["train"]
B, T = PAPER_TRAIN["batch_size"], PAPER_TRAIN["seq_len"]
# TORCH_COMPILE_OVERRIDE_BACKENDS in smoke mode on a machine without a C compiler (CPU Inductor
# needs one): every graph through aot_eager, which traces as Inductor does but generates no code.
SMOKE_BACKEND = ">=0:aot_eager"
# The time boxes (box_s) and the budget come from the cost model (gpu_costs.with_boxes).
GPU_PLAN = with_boxes(
    {
        "train": PAPER_TRAIN,
        "device": {},
        "precompile": {"sizes": ["3M", "15M", "50M", "100M"], "batch": B, "seq": T, "eval_tokens": B * T, "threads": 2},
        "pipeline": {"size": "3M", "steps": 60, "batch": B, "seq": T, "eval_tokens": B * T, "cores": 4},
        "correctness": {"size": "3M", "bits": [16, 6], "steps": 100, "batch": B, "seq": T},
        "packing": {"size": "3M", "k": [1, 8], "steps": 20, "batch": B, "seq": T, "threads": 2},
        "compile": {
            "sizes": ["3M", "15M"],
            "steps": 30,
            "config": "config/paper.yaml",
            "train": {},
            "batch": B,
            "seq": T,
            "eval_tokens": PAPER_TRAIN["eval_tokens"],
        },
        "speed": {"box_s": dict.fromkeys(["15M", "50M", "100M"]), "batch": B, "seq": T, "warmup": 5, "steps": 15},
        # one step of the largest paper size in its plan's micro-batches (train.gpu_memory_gib), eager
        "memory": {"size": "350M", "batch": B, "seq": T},
        "threads": 4,
    }
)
SMOKE_PLAN = {
    "budget_s": 1030,  # the boxes add up to 1,030 s; the whole takes 2-3 minutes of CPU time (benchmarks/README.md)
    "train": DEFAULT_CONFIG_TRAIN,
    "device": {"box_s": 30},
    # 0.25M: width 128, two query heads sharing one key/value head (grouped-query attention, as every
    # GPU size has). Its training and evaluation graphs compile through CPU Inductor (aot_eager without
    # a C compiler), here and in the correctness section; the other sections run eager ("compile": False).
    "precompile": {"box_s": 300, "sizes": ["0.25M"], "batch": 4, "seq": 32, "eval_tokens": 128, "threads": 1},
    "pipeline": {
        "box_s": 150,
        "size": "0.1M",
        "steps": 8,
        "batch": 4,
        "seq": 32,
        "eval_tokens": 128,
        "cores": 2,
        "compile": False,
    },
    "correctness": {"box_s": 240, "size": "0.25M", "bits": [16, 6], "steps": 20, "batch": 4, "seq": 32},
    "packing": {
        "box_s": 60,
        "size": "0.1M",
        "k": [1, 2],
        "steps": 3,
        "batch": 4,
        "seq": 32,
        "threads": 1,
        "compile": False,
    },
    "compile": {
        "box_s": 100,
        "sizes": ["0.1M"],
        "steps": 6,
        "config": "config/config.yaml",
        "train": {"batch_size": 4, "seq_len": 32, "eval_tokens": 256},
        "compile": False,
    },
    "speed": {"box_s": {"0.1M": 60, "0.16M": 60}, "batch": 4, "seq": 32, "warmup": 2, "steps": 5, "compile": False},
    # the default config names no GPU memory: two micro-batches asked for, to run accumulation
    "memory": {"box_s": 30, "size": "0.16M", "batch": 4, "seq": 32, "train": {"micro_batches": 2}},
    "threads": 1,
}


# --- running sections in fresh processes ------------------------------------------------------


def run_section(name: str, spec: dict, timeout: float, workdir: Path, env: dict) -> dict:
    """Run one section in a fresh process (and session: on time-out its whole process tree goes).
    Returns its record with "status": ok, failed (a check out of tolerance), error, oom or timeout."""
    stem = workdir / name.replace(":", "-")
    stem.with_suffix(".spec.json").write_text(json.dumps(spec))
    result = stem.with_suffix(".json")
    cmd = [sys.executable, __file__, "--section", name, str(stem.with_suffix(".spec.json")), str(result)]
    print(f"\n== {name} (time box {timeout:.0f} s)", flush=True)
    t0, cpu0 = time.monotonic(), cpu_seconds()
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    timed_out = False
    try:
        rc = proc.wait(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        timed_out, rc = True, None
    finally:
        if proc.poll() is None or timed_out:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    record = json.loads(result.read_text()) if result.exists() else {}
    record["wall_s"] = round(time.monotonic() - t0, 1)
    record["cpu_s"] = round(cpu_seconds() - cpu0, 1)  # the section's processes, all of them
    if timed_out:
        record["status"] = "timeout"
    elif rc != 0:
        record["status"] = "error"
    elif record.get("oom"):
        record["status"] = "oom"
    else:
        record["status"] = "failed" if record.get("failures") else "ok"
    print(f"== {name}: {record['status']} in {record['wall_s']} s (CPU {record['cpu_s']} s)", flush=True)
    return record


def cpu_seconds() -> float:
    """User and system time of this process's finished children (and theirs)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def child(name: str, spec_path: str, result_path: str) -> None:
    """A section's process: run it, record an exception instead of losing it."""
    spec = json.loads(Path(spec_path).read_text())
    record = Record(Path(result_path))
    try:
        SECTIONS[name.split(":")[0]](spec, record)
    except BaseException:
        record["error"] = traceback.format_exc()
        record.save()
        print(record["error"], file=sys.stderr, flush=True)
        sys.exit(1)
    record.save()


SECTIONS = {
    "device": section_device,
    "precompile": section_precompile,
    "pipeline": section_pipeline,
    "correctness": section_correctness,
    "packing": section_packing,
    "memory": section_memory,
    "compile": section_compile,
    "speed": section_speed,
}


# --- the whole check --------------------------------------------------------------------------


def child_env(args, tmp: Path) -> dict:
    cache = args.compile_cache or (tmp / "inductor" if args.smoke else REPO / "results" / "cache" / "inductor")
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]),
        "PYTHONUNBUFFERED": "1",
        "TORCHINDUCTOR_CACHE_DIR": str(Path(cache).resolve()),
        "HF_HUB_OFFLINE": "1",  # a bare GPU machine has no network; nothing here needs it
    }
    if args.smoke and not toolchain()["c_compiler"]:
        env["TORCH_COMPILE_OVERRIDE_BACKENDS"] = SMOKE_BACKEND
    return env


def planned_sections(args, plan: dict) -> list[tuple[str, dict, float]]:
    """(name, what the section gets besides the common spec, time box) of every wanted section, in order."""
    wanted = [("device", {"plan": plan["device"]}, plan["device"]["box_s"])]
    for name in ("precompile", "pipeline", "correctness", "packing", "compile", "memory"):
        wanted.append((name, {"plan": plan[name]}, plan[name]["box_s"]))
    for size, box_s in plan["speed"]["box_s"].items():
        wanted.append((f"speed:{size}", {"plan": plan["speed"], "size": size}, box_s))
    only = set(args.only or [])
    return [w for w in wanted if not only or w[0] == "device" or w[0] in only or w[0].split(":")[0] in only]


def run_all(args, plan: dict, tmp: Path) -> tuple[dict, dict]:
    """Every wanted section in order within the budget; returns (sections, fast-path settings).

    A section may run until the budget's end less the boxes of the sections after it: time one
    leaves unused goes to the next, and every later section keeps its own box."""
    budget = args.budget or plan["budget_s"]
    scale, deadline = budget / plan["budget_s"], time.monotonic() + budget
    env = child_env(args, tmp)
    spec = {
        "smoke": args.smoke,
        "tmp": str(tmp),
        "cache": env["TORCHINDUCTOR_CACHE_DIR"],
        "threads": plan["threads"],
        "train": plan["train"],
        "simulate_oom": args.simulate_oom,
    }
    todo = planned_sections(args, plan)
    if not args.smoke:
        print("\n".join(cost_lines(plan)), flush=True)
    sections: dict[str, dict] = {}
    fast: dict = {}
    for i, (name, extra, _) in enumerate(todo):
        timeout = deadline - time.monotonic() - scale * sum(box for _, _, box in todo[i + 1 :])
        if timeout < 5:
            print(f"\n== {name}: skipped, no time left in the {budget:.0f} s budget", flush=True)
            sections[name] = {"status": "timeout", "error": "skipped: no time left in the budget"}
        else:
            sections[name] = run_section(name, {**spec, **extra}, timeout, tmp, env)
        if name == "device":
            device = sections[name]
            if device["status"] != "ok" or not (device["cuda_available"] or args.smoke):
                break
            fast["fast"], fast["note"] = fast_settings(device, args.smoke)
            print(f"fast path: {fast['note']}", flush=True)
            spec.update(device=device, fast=fast["fast"])
        if name == "precompile" and sections[name].get("oom"):
            spec["precompile_oom"] = sections[name]["oom"]
            print(f"not precompiled (out of memory): {', '.join(spec['precompile_oom'])}", flush=True)
        if name == "pipeline":
            spec["data_dir"] = sections[name].get("data_dir")
    return sections, fast


def figures(sections: dict) -> list[dict]:
    """Each measured figure against its target (speed) or tolerance (correctness, pipeline)."""
    rows = []

    def add(what, value, target, below, fmt):
        met = None if value is None else (value <= target if below else value >= target)
        shown = "not measured" if value is None else fmt.format(value)
        rows.append(
            {"what": what, "measured": shown, "target": ("≤ " if below else "≥ ") + fmt.format(target), "met": met}
        )

    corr = sections.get("correctness", {})
    if corr:
        n_fail = len(corr.get("failures", []))
        rows.append(
            {
                "what": "correctness checks (loss curves, gradients, grid) within tolerance",
                "measured": "not run to the end"
                if corr["status"] in ("error", "timeout")
                else f"{n_fail} out of tolerance",
                "target": "0 out of tolerance",
                "met": corr["status"] == "ok",
            }
        )
    pipe = sections.get("pipeline", {})
    if pipe:
        rows.append(
            {
                "what": "pipeline: 4 runs trained on the device, tables written",
                "measured": f"{len(pipe.get('runs', []))} runs, {pipe.get('wall_s', 0):.0f} s",
                "target": "4 runs, every table",
                "met": pipe["status"] == "ok",
            }
        )
    for name, s in sections.items():
        if name.startswith("speed:"):
            size = name.split(":")[1]
            add(
                f"{size} QAT overhead (INT6 / FP16 step)",
                s.get("qat_overhead"),
                TARGETS["qat_overhead_gpu"],
                True,
                "{:.3f}",
            )
            if f"mfu_{size}" in TARGETS:
                by_bits = {r["bits"]: r for r in s.get("rows", [])}
                for b in (16, 6):
                    add(f"{size} MFU, bits {b}", by_bits.get(b, {}).get("mfu"), TARGETS[f"mfu_{size}"], False, "{:.1%}")
    pack = sections.get("packing", {})
    if pack:
        gain = pack.get("gain", {})
        k = max(gain, key=int) if gain else "8"
        add(f"packing gain, K = {k} concurrent runs", gain.get(k), TARGETS["packing_k8"], False, "{:.2f}x")
    for size, e in sections.get("compile", {}).get("run_cost", {}).get("sizes", {}).items():
        add(
            f"{size} first compiled step, warm / cold cache",
            e.get("warm_over_cold"),
            TARGET_WARM_OVER_COLD,
            True,
            "{:.1%}",
        )
    mem = sections.get("memory", {})
    if mem.get("measured_over_modelled") is not None:
        what = f"{mem['size']} step in {mem['micro_batches']} micro-batches: max allocated / modelled tensors"
        add(what, mem["measured_over_modelled"], 1.0, True, "{:.2f}")
    return rows


def merged_results(path: Path, check_section: dict, run_cost: dict | None) -> dict:
    """The results file with this check's section (sections run before and not rerun are kept) and
    the run costs merged size by size into the measurement of the same config and device type."""
    results = json.loads(path.read_text()) if path.exists() else {}
    previous = results.get("gpu_check", {}).get("sections", {})
    check_section["sections"] = {**previous, **check_section["sections"]}
    results["gpu_check"] = check_section
    if run_cost and run_cost["sizes"]:
        old = results.get("run_cost", {})
        same = old.get("config") == run_cost["config"] and old.get("device_type") == run_cost["device_type"]
        if same:
            run_cost = {**run_cost, "sizes": {**old.get("sizes", {}), **run_cost["sizes"]}}
        results["run_cost"] = run_cost
    return results


def markdown(res: dict) -> str:
    g = res["gpu_check"]
    d = g["device"]
    sections = g["sections"]
    lines = [
        f"# GPU check: {d.get('device')} ({g['date']})",
        "",
        f"torch {d.get('torch')}, CUDA {d.get('cuda_build')}, driver {d.get('driver')}, cuDNN {d.get('cudnn')}, "
        f"Triton {d.get('triton')}, compute capability {d.get('capability')}, {d.get('memory_gib')} GiB. "
        f"Mode: {g['mode']}. Fast path: {g['fast_note']}. Whole check: {g['wall_s']:.0f} s "
        f"(budget {g['budget_s']:.0f} s). "
        + ("Failed: " + ", ".join(g["failed"]) if g["failed"] else "No section failed."),
        "",
        "## Sections",
        "",
        "| section | status | wall s | note |",
        "|---|---|---|---|",
    ]
    for name, s in sections.items():
        note = "; ".join(s.get("failures", [])) or (s.get("error") or "").strip().splitlines()[-1:] or ""
        note = note if isinstance(note, str) else " ".join(note)
        if s.get("oom"):
            note = f"OOM: {s['oom']}"
        lines.append(f"| {name} | {s['status']} | {s.get('wall_s', '')} | {note.replace('|', '/')} |")
    lines += ["", "## Against the targets", "", "| figure | measured | target | met |", "|---|---|---|---|"]
    met = {True: "yes", False: "**no**", None: "–"}
    lines += [f"| {r['what']} | {r['measured']} | {r['target']} | {met[r['met']]} |" for r in g["figures"]]
    lines += correctness_markdown(sections.get("correctness", {}))
    lines += speed_markdown(sections)
    pipe = sections.get("pipeline", {})
    if pipe.get("runs"):
        lines += ["", f"## Pipeline ({pipe.get('jobs')} jobs, {pipe['wall_s']:.0f} s)", ""]
        lines += ["| run | device | precision | compiled | train s | val loss |", "|---|---|---|---|---|---|"]
        lines += [
            f"| {r['run_id']} | {r['device']} | {r['precision']} | {r['compiled']} | {r['wall_seconds']:.1f} | "
            f"{r['final_val_loss']:.4f} |"
            for r in pipe["runs"]
        ]
    if res.get("run_cost", {}).get("sizes"):
        from common import run_cost_markdown

        lines += ["", run_cost_markdown(res["run_cost"]).replace("# ", "## ", 1)]
    return "\n".join(lines) + "\n"


def correctness_markdown(c: dict) -> list[str]:
    if not c.get("bits"):
        return []
    lines = [
        "",
        f"## Correctness: {c['size']}, {c['steps']} steps of {c['batch']} × {c['seq']}, fast path "
        f"({c['precision']}, compiled {c['compiled']}) vs exact fp32 eager",
        "",
        "| bits | first step Δ | max Δ per tenth | val loss fast / fp32 | grad err vs eager | vs fp32 | "
        "quantiser's effect | grid distance (latent) | level mismatch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for label, r in c["bits"].items():
        cv, gr, q = r["curves"], r["grads"], r.get("grid", {})
        grid = f"{q['mean_distance']:.1e} ({q['latent_mean_distance']:.3f})" if q else "–"
        lines.append(
            f"| {label} | {cv['first_step_diff']:.4f} | {cv['max_window_diff']:.4f} | "
            f"{r['val_fast']:.4f} / {r['val_ref']:.4f} | {gr['rel_err_vs_eager']:.4f} | {gr['rel_err_vs_fp32']:.4f} | "
            f"{gr.get('qat_effect', float('nan')):.4f} | {grid} | {q.get('mismatch_vs_eager', float('nan')):.1e} |"
        )
    tol = ", ".join(f"{k} {v:g}" for k, v in c["tolerances"].items())
    return lines + ["", f"Tolerances: {tol}."]


def speed_markdown(sections: dict) -> list[str]:
    lines = []
    for name, s in sections.items():
        if not name.startswith("speed:"):
            continue
        if not lines:
            lines = [
                "",
                "## Throughput (FP16 and INT6 round-robin; median step [IQR])",
                "",
                "| size | bits | tokens/s | step ms | MFU | GPU max alloc MB |",
                "|---|---|---|---|---|---|",
            ]
        if s.get("oom"):
            lines.append(f"| {s.get('size', name)} | – | OOM | | | |")
        for r in s.get("rows", []):
            q, share = r["step_s"], "–" if r["mfu"] is None else f"{r['mfu']:.1%}"
            memory = f"{r['gpu_max_allocated_mb']:.0f}" if "gpu_max_allocated_mb" in r else "–"
            lines.append(
                f"| {r['size']} | {r['bits']} | {r['tokens_per_s']:,.0f} | "
                f"{q[1] * 1e3:.1f} [{q[0] * 1e3:.1f}–{q[2] * 1e3:.1f}] | {share} | {memory} |"
            )
    return lines


def finish(args, plan: dict, sections: dict, fast: dict, wall_s: float) -> int:
    device = sections["device"]
    failed = [n for n, s in sections.items() if s["status"] not in ("ok", "oom")]
    check_section = {
        "mode": "smoke (CPU)" if args.smoke else "gpu",
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "budget_s": args.budget or plan["budget_s"],
        "wall_s": wall_s,
        "fast": fast.get("fast"),
        "fast_note": fast.get("note"),
        "device": device,
        "sections": sections,
        "tolerances": TOL,
        "targets": {**TARGETS, "warm_over_cold": TARGET_WARM_OVER_COLD},
    }
    stem = args.out / (device["machine"] + ("-smoke" if args.smoke else ""))
    args.out.mkdir(parents=True, exist_ok=True)
    results = merged_results(stem.with_suffix(".json"), check_section, sections.get("compile", {}).get("run_cost"))
    results["gpu_check"]["figures"] = figures(results["gpu_check"]["sections"])
    results["gpu_check"]["failed"] = failed
    stem.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str) + "\n")
    md_path = stem.parent / f"{stem.name}-gpu_check.md" if not args.smoke else stem.with_suffix(".md")
    md_path.write_text(markdown(results))
    print("\n" + "\n".join(summary_lines(results["gpu_check"])))
    print(f"\nwrote {stem.with_suffix('.json')} and {md_path}")
    return 1 if failed else 0


def summary_lines(g: dict) -> list[str]:
    lines = [f"GPU check on {g['device'].get('device')}: {g['wall_s']:.0f} s ({g['mode']})"]
    for name, s in g["sections"].items():
        lines.append(f"  {name:<14} {s['status']:<8} {s.get('wall_s', '')} s")
    lines.append("Against the targets:")
    marks = {True: "met", False: "NOT met", None: "not measured"}
    lines += [f"  {r['what']}: {r['measured']} (target {r['target']}) {marks[r['met']]}" for r in g["figures"]]
    if g["mode"].startswith("smoke"):
        lines.append("(smoke mode: CPU figures of tiny models; the targets are the GPU's)")
    return lines


def no_gpu_message(device: dict) -> str:
    why = (
        f"torch {device['torch']} is a CPU build"
        if not device.get("cuda_build")
        else f"torch {device['torch']} (CUDA {device['cuda_build']}) sees no GPU "
        f"(CUDA_VISIBLE_DEVICES={device.get('visible_devices')})"
    )
    return (
        f"No CUDA GPU: {why}. This check needs one; `python benchmarks/gpu_check.py --smoke` runs its code "
        "paths on CPU (benchmarks/README.md: bringing the project to a GPU machine)."
    )


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--smoke", action="store_true", help="CPU, tiny sizes and steps: 2-3 minutes of CPU")
    ap.add_argument(
        "--only", nargs="+", metavar="SECTION", help="pipeline, correctness, packing, compile, speed or speed:<size>"
    )
    ap.add_argument("--budget", type=float, help="seconds for the whole check (default: the boxes' sum)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument(
        "--compile-cache", type=Path, help="Inductor cache the sections share (default results/cache/inductor)"
    )
    ap.add_argument("--simulate-oom", nargs="*", default=[], metavar="SIZE", help=argparse.SUPPRESS)
    ap.add_argument("--section", nargs=3, help=argparse.SUPPRESS)
    return ap.parse_args()


def main() -> int:
    args = parse_args()
    if args.section:
        child(*args.section)
        return 0
    plan = SMOKE_PLAN if args.smoke else GPU_PLAN
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpu_check-") as tmp:
        try:
            sections, fast = run_all(args, plan, Path(tmp))
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
    device = sections["device"]
    if device["status"] != "ok":
        print(f"the device section failed: {device.get('error', device['status'])}", file=sys.stderr)
        return 1
    if not device["cuda_available"] and not args.smoke:
        print(no_gpu_message(device), file=sys.stderr)
        return 2
    return finish(args, plan, sections, fast, time.monotonic() - t0)


if __name__ == "__main__":
    sys.exit(main())
