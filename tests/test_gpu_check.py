"""benchmarks/gpu_check.py: its CPU smoke mode end to end (every section, the files it writes, the
run costs in the format the audit reads), what it does without a GPU, its time box, and the audit
reading a results file in the format the check writes."""

import argparse
import json
import subprocess
import sys

import pytest
from conftest import REPO
from test_audit import paper_config

from qatgrid.audit import evaluations, gpu_hours, measured_costs
from qatgrid.runs import expand_runs

sys.path.insert(0, str(REPO / "benchmarks"))
import common  # noqa: E402
import gpu_check  # noqa: E402
import gpu_costs  # noqa: E402
import gpu_sections  # noqa: E402

SCRIPT = str(REPO / "benchmarks" / "gpu_check.py")
JOB_KEYS = {"fixed_s", "tokens_per_s", "eval_tokens_per_s", "checkpoint_s", "first_step_s", "step_s", "wall_s"}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """One smoke run for the module: 0.16M's speed section out of memory (simulated), the rest measured."""
    out = tmp_path_factory.mktemp("smoke")
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--smoke", "--out", str(out), "--simulate-oom", "0.16M"],
        capture_output=True,
        text=True,
        timeout=1200,
    )
    assert proc.returncode == 0, proc.stdout[-5000:] + proc.stderr[-5000:]
    (path,) = out.glob("*-smoke.json")
    return proc, path, json.loads(path.read_text())


def test_smoke_runs_every_section(smoke):
    proc, path, res = smoke
    sections = res["gpu_check"]["sections"]
    assert list(sections) == [
        "device",
        "precompile",
        "pipeline",
        "correctness",
        "packing",
        "compile",
        "memory",
        "speed:0.1M",
        "speed:0.16M",
    ]
    assert {n: s["status"] for n, s in sections.items() if n != "speed:0.16M"} == dict.fromkeys(
        [n for n in sections if n != "speed:0.16M"], "ok"
    )
    assert res["gpu_check"]["failed"] == []
    memory = sections["memory"]  # accumulation over the two micro-batches the smoke plan asks for
    assert memory["micro_batches"] == 2 and memory["precision"] == "bf16-cpu" and memory["loss"] > 0
    assert memory["modelled_gib"]["total"] > memory["modelled_gib"]["activations"] > 0
    assert "Against the targets:" in proc.stdout
    md = path.with_suffix(".md").read_text()
    for heading in ("## Sections", "## Against the targets", "## Correctness", "## Throughput", "## Pipeline"):
        assert heading in md


def test_smoke_compiles_a_grouped_query_size_through_inductor(smoke):
    """Where a C compiler exists (CI has gcc) the smoke mode's graphs go through CPU Inductor,
    at a size with two query heads on one key/value head; the device section skips the libcuda
    check without CUDA instead of failing it."""
    import shutil

    from qatgrid.model import ModelConfig

    _, _, res = smoke
    g, sections = res["gpu_check"], res["gpu_check"]["sections"]
    assert sections["device"]["libcuda"] == {"status": "skipped", "detail": "no CUDA"}
    backend = "CPU Inductor" if shutil.which("cc") or shutil.which("gcc") else "aot_eager"
    assert backend in g["fast_note"]
    cfg = ModelConfig.from_size(sections["correctness"]["size"], vocab_size=1024, seq_len=32)
    assert cfg.n_head >= 2 and cfg.n_kv_head < cfg.n_head
    pre = sections["precompile"]
    assert set(pre["first_step_s"]) == set(pre["first_eval_s"]) == {"0.25M bits 16", "0.25M bits 6"}
    assert sections["correctness"]["size"] == "0.25M" and sections["correctness"]["compiled"] is True


def test_without_cuda_the_libcuda_check_is_skipped_and_a_missing_triton_is_named():
    assert gpu_sections.triton_libcuda(False) == {"status": "skipped", "detail": "no CUDA"}
    try:
        import triton  # noqa: F401
    except ImportError:
        found = gpu_sections.triton_libcuda(True)
        assert found["status"] == "missing" and "triton" in found["detail"]


def test_smoke_out_of_memory_is_reported_and_the_rest_goes_on(smoke):
    _, _, res = smoke
    oom = res["gpu_check"]["sections"]["speed:0.16M"]
    assert oom["status"] == "oom" and "out of memory" in oom["oom"]
    assert "rows" not in oom
    assert res["gpu_check"]["sections"]["speed:0.1M"]["status"] == "ok"


def test_smoke_correctness_numbers(smoke):
    _, _, res = smoke
    c = res["gpu_check"]["sections"]["correctness"]
    assert set(c["bits"]) == {"fp16", "int6"} and c["compiled"] is True
    for r in c["bits"].values():
        assert len(r["curves"]["window_diffs"]) == 10
        assert r["curves"]["max_window_diff"] <= gpu_check.TOL["curve_window"]
        assert r["grads"]["rel_err_vs_fp32"] <= gpu_check.TOL["grad_vs_fp32"]
    grid = c["bits"]["int6"]["grid"]
    assert grid["mean_distance"] < 1e-4 < 0.1 < grid["latent_mean_distance"] < 0.5
    assert c["bits"]["int6"]["grads"]["qat_effect"] > 0 and "qat_effect" not in c["bits"]["fp16"]["grads"]


def test_smoke_speed_packing_and_pipeline_numbers(smoke):
    _, _, res = smoke
    sections = res["gpu_check"]["sections"]
    speed = sections["speed:0.1M"]
    assert [r["bits"] for r in speed["rows"]] == [16, 6]
    assert all(r["tokens_per_s"] > 0 and len(r["step_s"]) == 3 and r["mfu"] is None for r in speed["rows"])
    assert speed["qat_overhead"] > 0
    assert set(sections["packing"]["gain"]) == {"1", "2"} and sections["packing"]["gain"]["1"] == 1.0
    pipe = sections["pipeline"]
    assert len(pipe["runs"]) == 4 and all(r["device"] == "cpu" for r in pipe["runs"])
    assert all(n > 0 for n in pipe["tables"].values()) and set(pipe["tables"]) == set(gpu_sections.TABLES)
    figures = {f["what"]: f for f in res["gpu_check"]["figures"]}
    assert figures["0.1M QAT overhead (INT6 / FP16 step)"]["measured"] == f"{speed['qat_overhead']:.3f}"
    assert figures["0.16M QAT overhead (INT6 / FP16 step)"]["met"] is None  # OOM: not measured


def test_smoke_run_costs_are_in_the_format_the_audit_reads(smoke):
    _, path, res = smoke
    cost = res["run_cost"]
    assert cost["device_type"] == "cpu" and cost["machine"] + "-smoke" == path.stem
    entry = cost["sizes"]["0.1M"]
    assert JOB_KEYS <= set(entry["cold"]) and JOB_KEYS <= set(entry["warm"])
    assert entry["warm_over_cold"] == pytest.approx(entry["warm"]["first_step_s"] / entry["cold"]["first_step_s"])
    assert all(entry[k][m] > 0 for k in ("cold", "warm") for m in ("tokens_per_s", "eval_tokens_per_s"))
    config = {"audit": {"device": path.stem}, "train": {"compile": True}}
    costs, source = measured_costs(config, path.parent)
    assert source == path and costs["0.1M"]["fixed_s"] == entry["warm"]["fixed_s"]
    assert costs["0.1M"]["cold_fixed_s"] == entry["cold"]["fixed_s"]


def test_without_a_gpu_it_says_so_and_exits_non_zero(tmp_path):
    pytest.importorskip("torch")
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    proc = subprocess.run([sys.executable, SCRIPT, "--out", str(tmp_path)], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "No CUDA GPU" in proc.stderr and "--smoke" in proc.stderr
    assert not list(tmp_path.iterdir())  # nothing measured, nothing written


def test_a_section_past_its_time_box_is_killed_and_reported(tmp_path):
    env = gpu_check.child_env(argparse.Namespace(compile_cache=None, smoke=True), tmp_path)
    record = gpu_check.run_section("device", {"plan": {}}, 0.2, tmp_path, env)  # importing torch takes longer
    assert record["status"] == "timeout" and record["wall_s"] < 10


def test_a_gpu_without_bf16_runs_the_fast_path_in_fp32_and_says_so():
    fast, note = gpu_check.fast_settings({"bf16": False, "capability": "7.0"}, smoke=False)
    assert fast == {"precision": "fp32", "compile": True}
    assert "no bf16" in note and "fp32" in note and "7.0" in note
    assert gpu_check.fast_settings({"bf16": True}, smoke=False)[0] == {"precision": "bf16", "compile": True}


def test_results_keep_earlier_sections_and_merge_run_costs_by_size(tmp_path):
    path = tmp_path / "gpu.json"
    old = {"config": "config/paper.yaml", "device_type": "cuda", "sizes": {"3M": {"warm": 1}, "15M": {"warm": 2}}}
    path.write_text(json.dumps({"throughput": [1], "run_cost": old, "gpu_check": {"sections": {"packing": {"a": 1}}}}))
    new = {"config": "config/paper.yaml", "device_type": "cuda", "sizes": {"15M": {"warm": 3}}}
    res = gpu_check.merged_results(path, {"sections": {"device": {"b": 2}}}, new)
    assert res["throughput"] == [1]  # bench.py's sections stay
    assert res["gpu_check"]["sections"] == {"packing": {"a": 1}, "device": {"b": 2}}
    assert res["run_cost"]["sizes"] == {"3M": {"warm": 1}, "15M": {"warm": 3}}
    other = {**new, "config": "config/config.yaml"}  # another config's costs replace, never mix
    assert gpu_check.merged_results(path, {"sections": {}}, other)["run_cost"]["sizes"] == {"15M": {"warm": 3}}


# --- the audit reads the check's results file ----------------------------------------------------

WARM = {"fixed_s": 12.0, "tokens_per_s": 1_500_000.0, "eval_tokens_per_s": 4_000_000.0, "checkpoint_s": 0.8}
COLD = {**WARM, "fixed_s": 70.0}


def write_gpu_results(bench_dir, device: str) -> None:
    """A results file as gpu_check.py writes it (through its own merge), measured at 15M and 100M."""
    run_cost = {
        "machine": device,
        "device_type": "cuda",
        "device": "NVIDIA H200",
        "config": "config/paper.yaml",
        "bits": 6,
        "repeats": 1,
        "steps_per_job": 30,
        "target_warm_over_cold": 0.15,
        "train": {"batch_size": 64, "seq_len": 1024, "eval_tokens": 1048576, "threads": 4, "precision": "bf16"},
        "sizes": {
            "15M": {"cold": COLD, "warm": WARM, "warm_over_cold": 0.1},
            "100M": {"cold": {**COLD, "tokens_per_s": 400_000.0}, "warm": {**WARM, "tokens_per_s": 400_000.0}},
        },
    }
    bench_dir.mkdir(parents=True, exist_ok=True)
    path = bench_dir / f"{device}.json"
    path.write_text(json.dumps(gpu_check.merged_results(path, {"sections": {}}, run_cost)))


def test_the_audit_estimates_the_paper_grid_from_the_checks_measurements(tmp_path):
    cfg = paper_config()
    cfg["audit"]["device"] = "nvidia-h200"
    cfg["train"]["shared_trunk"] = False  # each run a job from step 0: the per-run cost by hand
    write_gpu_results(tmp_path, "nvidia-h200")
    est = gpu_hours(cfg, tmp_path)
    per_size, train = est["per_size"], cfg["train"]
    assert per_size["15M"]["source"] == per_size["100M"]["source"] == "measured (nvidia-h200.json)"
    assert per_size["50M"]["source"] == "audit.tokens_per_second"

    # By hand: a Phase 2 run is 3,000 steps of 64 x 1,024 tokens, evaluated every 500 steps (6 times,
    # 1,048,576 tokens each) and checkpointed every 250 steps before the last (11 times).
    tokens, evals, ckpts = 3000 * 64 * 1024, 6, 11
    assert evaluations(3000, train) == evals
    variable = tokens / 1_500_000 + evals * 1048576 / 4_000_000 + ckpts * 0.8
    first, later = [r.id for r in expand_runs(cfg) if r.phase == "phase2" and r.size == "15M" and r.bits == 6][:2]
    assert est["per_run"][first] == pytest.approx((70.0 + variable) / 3600)  # its shape compiles from nothing
    assert est["per_run"][later] == pytest.approx((12.0 + variable) / 3600)  # a warm cache
    assert est["source"][later] == "measured (nvidia-h200.json)"

    # The whole size: one cold compile per (bit-width, tokens per step) shape, every other run warm.
    by_hand = 0.0
    for r in (r for r in expand_runs(cfg) if r.size == "15M"):
        steps = 3000 * r.length_mult
        seconds = (
            12.0
            + steps * 64 * 1024 / 1_500_000
            + evaluations(steps, train) * 1048576 / 4_000_000
            + (steps - 1) // 250 * 0.8
        )
        by_hand += seconds / 3600
    shapes_15m = 3 + 1  # FP16, INT8, INT6 (Phase 2 and its arms) and INT4 (phase5-int4)
    by_hand += shapes_15m * (70.0 - 12.0) / 3600
    assert per_size["15M"]["gpu_hours"] == pytest.approx(by_hand)
    rates = cfg["audit"]["tokens_per_second"]
    assert per_size["50M"]["gpu_hours"] == pytest.approx(per_size["50M"]["runs"] * tokens / rates["50M"] / 3600)


@pytest.mark.parametrize("plan", [gpu_check.GPU_PLAN, gpu_check.SMOKE_PLAN], ids=["gpu", "smoke"])
def test_the_time_boxes_fit_the_budget(plan):
    """Every section keeps its box (time unused goes to the next), so their sum bounds the whole."""
    args = argparse.Namespace(only=None)
    boxes = [box for _, _, box in gpu_check.planned_sections(args, plan)]
    assert len(boxes) == 7 + len(plan["speed"]["box_s"])  # device, precompile, pipeline … compile, memory, speed:*
    assert sum(boxes) <= plan["budget_s"]
    only = gpu_check.planned_sections(argparse.Namespace(only=["speed:50M", "packing"]), gpu_check.GPU_PLAN)
    assert [name for name, _, _ in only] == ["device", "packing", "speed:50M"]


def test_every_gpu_box_holds_its_modelled_cost_with_the_margin():
    plan = gpu_check.GPU_PLAN
    costs = gpu_costs.section_costs(plan)
    boxes = dict((name, box) for name, _, box in gpu_check.planned_sections(argparse.Namespace(only=None), plan))
    assert set(costs) <= set(boxes) and {"precompile", "correctness", "speed:100M"} <= set(costs)
    for name, (cost, _) in costs.items():
        assert boxes[name] >= cost * gpu_costs.MARGIN, name
    assert plan["budget_s"] == sum(boxes.values())
    # The budget says how long the check may take on the slowest GPU planned for; the expected
    # time (the modelled costs) is two thirds of it.
    modelled_boxes = sum(boxes[name] for name in costs)
    assert sum(c for c, _ in costs.values()) == pytest.approx(modelled_boxes / gpu_costs.MARGIN, rel=0.05)
    lines = gpu_costs.cost_lines(plan)
    assert len(lines) == 2 + len(costs) and lines[-1].split()[0] == "total"


def test_modelled_step_time_by_hand():
    # 100M: 13 layers of width 1,024; 6 N + 12 L d T FLOPs per token, 64 x 1,024 tokens a step.
    flops = (6 * 100e6 + 12 * 13 * 1024 * 1024) * 64 * 1024
    assert gpu_costs.step_s("100M", 64, 1024) == pytest.approx(flops / (756e12 * 0.30))
    assert gpu_costs.step_s("3M", 1, 16) == gpu_costs.STEP_FLOOR_S  # launch-bound
    fp32 = (6 * 3e6 + 12 * 6 * 256 * 1024) * 64 * 1024 / (51e12 * 0.30)
    assert gpu_costs.step_s("3M", 64, 1024, fp32=True) == pytest.approx(fp32)


def test_precompile_schedule_keeps_running_shapes_within_the_memory():
    # a (60 GB, 10 s) runs alone: b and c (30 GB each) do not fit beside it in 70 GB; they start
    # together when it ends. d (100 GB) fits nowhere and runs alone, last.
    tasks = [("b", 30, 5.0), ("a", 60, 10.0), ("c", 30, 5.0), ("d", 100, 1.0)]
    assert gpu_costs.schedule(tasks, 70) == [["d"], ["a"], ["b", "c"]]
    assert gpu_costs.makespan(tasks, 70) == pytest.approx(1 + 10 + 5)
    assert gpu_costs.schedule(tasks, 1000) == [["d", "a", "b", "c"]]
    assert gpu_costs.makespan(tasks, 1000) == pytest.approx(10)


def test_precompile_reports_out_of_memory_per_shape_and_speed_skips_it(tmp_path):
    """Each shape in a fresh process, largest first; one that fails beside others is retried
    alone; an out-of-memory shape is reported per shape and its size's speed section says so
    without compiling it cold. (Eager, 0.1M: the compiling path is the smoke run's.)"""
    spec = {
        "tmp": str(tmp_path),
        "device": {"memory_gib": None},
        "fast": {"precision": "bf16", "compile": False},
        "simulate_oom": ["0.16M"],
        "plan": {"sizes": ["0.1M", "0.16M"], "batch": 2, "seq": 16, "eval_tokens": 32, "threads": 1},
    }
    record = gpu_sections.Record(tmp_path / "precompile.json")
    gpu_sections.section_precompile(spec, record)
    assert record["started"][:2] == ["0.16M bits 16", "0.16M bits 6"]  # the larger first
    assert set(record["first_step_s"]) == set(record["first_eval_s"]) == {"0.1M bits 16", "0.1M bits 6"}
    assert set(record["oom"]) == {"0.16M bits 16", "0.16M bits 6"}
    assert all("out of memory" in m for m in record["oom"].values())
    assert record["started"].count("0.16M bits 6") == 1  # the retry is not a new start in the schedule
    assert "failures" not in record and record["errors"] == {}

    speed = gpu_sections.Record(tmp_path / "speed.json")
    gpu_sections.section_speed({**spec, "size": "0.16M", "precompile_oom": record["oom"]}, speed)
    assert "precompile" in speed["oom"] and "rows" not in speed


# --- the benchmarks' shared helpers ------------------------------------------------------------


def test_packing_rate_is_every_token_over_the_whole_span():
    # Two runs of 1,000 tokens each, over [0, 10] and [2, 12] s: 2,000 tokens in 12 s (166.7/s),
    # not 1,000/10 + 1,000/10 = 200/s.
    assert common.aggregate_rate([(0.0, 10.0, 1000), (2.0, 12.0, 1000)]) == pytest.approx(2000 / 12)
    assert common.aggregate_rate([(5.0, 7.0, 300)]) == pytest.approx(150)
    # Three runs, one finishing early: 600 + 600 + 300 tokens over [1, 7].
    assert common.aggregate_rate([(1.0, 7.0, 600), (1.5, 6.0, 600), (2.0, 4.0, 300)]) == pytest.approx(1500 / 6)


@pytest.mark.parametrize(
    ("name", "tflops"),
    [
        ("NVIDIA H100 80GB HBM3", 989),
        ("NVIDIA H100 PCIe", 756),
        ("NVIDIA H100 NVL", 835),
        ("NVIDIA H200", 989),
        ("NVIDIA H200 NVL", 835),
        ("NVIDIA A100-SXM4-80GB", 312),
        ("NVIDIA A100 80GB PCIe", 312),
        ("NVIDIA A10", 125),
        ("Tesla V100-SXM2-16GB", None),
    ],
)
def test_bf16_peak_by_device_name(name, tflops):
    peak = common.bf16_peak(name)
    assert peak is None if tflops is None else peak == tflops * 1e12, peak
