import json

import pytest
import yaml
from conftest import REPO, load_default_config, merged_config

from qatgrid.audit import (
    AuditMismatch,
    check_counts,
    evaluations,
    gpu_hours,
    grid_table,
    phase_group,
    report,
    write_audit,
)
from qatgrid.runs import expand_runs


def paper_config() -> dict:
    """config/paper.yaml merged over the default, as `--configfile` does."""
    return merged_config("paper.yaml")


def test_paper_grid_counts_match_the_study(tmp_path):
    table = grid_table(paper_config(), tmp_path)
    assert len(table) == 1345
    assert table.groupby("phase_group").size().to_dict() == {"phase2": 720, "phase5": 625}
    assert (table["status"] == "not started").all()
    int4 = table[table["bits"] == 4]
    assert int4["seed"].nunique() == 10 and int4["size"].nunique() == 8
    p2 = table[table["phase"] == "phase2"]
    assert set(p2["size"]) == {"15M", "30M", "50M", "100M"} and p2["seed"].nunique() == 5
    assert set(table[table["phase"] == "phase5-length"]["length_mult"]) == {3, 9}
    assert table["est_gpu_hours"].notna().all() and table["est_gpu_hours"].sum() > 0


def test_mismatch_is_loud_and_named(tmp_path):
    cfg = load_default_config()
    cfg["audit"] = {"expected_runs": {"phase2": 720, "total": 52}}
    with pytest.raises(AuditMismatch, match="phase2: grid has 48 runs, expected 720"):
        write_audit(cfg, tmp_path / "results", tmp_path / "grid.md", tmp_path / "grid.csv")
    assert "MISMATCH" in (tmp_path / "grid.md").read_text()


def test_status_of_a_partly_filled_results_folder(tmp_path):
    cfg = load_default_config()
    ids = list(grid_table(cfg, tmp_path)["run_id"])
    results = tmp_path / "results"
    for rid, diverged in ((ids[0], False), (ids[1], True)):
        (results / "runs" / rid).mkdir(parents=True)
        (results / "runs" / rid / "metrics.json").write_text(json.dumps({"diverged": diverged}))
    (results / "state" / ids[2]).mkdir(parents=True)
    (results / "state" / ids[2] / "last.pt").write_bytes(b"x")
    (results / "logs" / "train" / ids[3]).parent.mkdir(parents=True)
    (results / "logs" / "train" / f"{ids[3]}.log").write_text("Traceback")
    table = write_audit(cfg, results, tmp_path / "grid.md", tmp_path / "grid.csv")
    status = table.set_index("run_id")["status"]
    assert [status[i] for i in ids[:5]] == ["done", "diverged", "interrupted", "failed", "not started"]
    assert status.value_counts()["not started"] == 82
    md = (tmp_path / "grid.md").read_text()
    assert (
        "phase2: 48 planned, 48 expected — OK" in md
        and "total: 86 planned, 86 expected — OK" in md
        and f"| {ids[1]} | diverged |" in md
    )
    # the status table speaks `qatgrid status`'s words (qatgrid.audit.STATUSES, less running)
    assert "| phase | done | diverged | interrupted | failed | not started |" in md


def test_phase_group_and_count_check():
    assert phase_group("phase5-int4") == "phase5" and phase_group("phase2") == "phase2"
    import pandas as pd

    t = pd.DataFrame({"phase_group": ["a", "a", "b"], "run_id": ["1", "2", "3"]})
    assert check_counts(t, {"a": 2, "b": 1, "total": 3}) == []
    assert check_counts(t, {"a": 2, "b": 1, "c": 1}) == ["c: grid has 0 runs, expected 1"]
    # every phase group of the grid must be counted, and counts must exist at all
    assert check_counts(t, {"a": 2, "total": 3}) == ["b: grid has 1 runs, audit.expected_runs does not list it"]
    assert check_counts(t, {}) == ["audit.expected_runs is not declared (the grid's runs per phase group and in total)"]


def test_config_layers_merge_as_snakemake_but_the_audit_block_whole():
    """Snakemake merges --configfile key by key at every depth; the default's audit block (its
    phase counts, its CPU device) must not survive under another grid's."""
    from snakemake.utils import update_config

    from qatgrid.config import merge_config_layers

    names = ("config.yaml", "paper.yaml", "extension.yaml")
    layers = [(n, yaml.safe_load((REPO / "config" / n).read_text())) for n in names]
    for later in layers[1:]:
        merged, sources = merge_config_layers([layers[0], later])
        snake = {}
        for _, layer in (layers[0], later):
            update_config(snake, layer)
        assert {k: v for k, v in merged.items() if k != "audit"} == {k: v for k, v in snake.items() if k != "audit"}
        assert merged["audit"] == later[1]["audit"] != snake["audit"]
        assert sources["audit"] == sources["sweeps"] == later[0] and sources["probe"] == later[0]
    assert "device" not in merge_config_layers([layers[0], layers[2]])[0]["audit"]


def test_a_grid_without_its_own_counts_names_the_file_to_fix(tmp_path):
    cfg = load_default_config()
    cfg["sweeps"] = cfg["sweeps"][:1]
    with pytest.raises(AuditMismatch, match=r"phase5: grid has 0 runs, expected 24.*give my.yaml an audit block"):
        write_audit(
            cfg,
            tmp_path / "results",
            tmp_path / "grid.md",
            tmp_path / "grid.csv",
            sources={"audit": "config/config.yaml", "sweeps": "my.yaml"},
        )


def write_costs(bench_dir, device: str, sizes: dict, device_type: str = "cpu") -> None:
    bench_dir.mkdir(parents=True, exist_ok=True)
    (bench_dir / f"{device}.json").write_text(
        json.dumps({"throughput": [], "run_cost": {"device_type": device_type, "sizes": sizes}})
    )


COST = {"fixed_s": 3.0, "tokens_per_s": 51200.0, "eval_tokens_per_s": 163840.0, "checkpoint_s": 0.5}


def test_estimate_from_measured_run_costs_by_hand(tmp_path):
    cfg = load_default_config()
    cfg["audit"]["device"] = "test-cpu"
    cfg["train"]["shared_trunk"] = False  # each run a job from step 0 (trunks: tests/test_trunks.py)
    # eager CPU runs take the eager job's costs; the compiled ones would differ
    write_costs(
        tmp_path,
        "test-cpu",
        {"0.1M": {"eager": COST, "warm": {**COST, "fixed_s": 99.0}, "cold": {**COST, "fixed_s": 500.0}}},
    )
    est = gpu_hours(cfg, tmp_path)
    # 100 steps of 8 x 128 tokens at 51,200 tok/s = 2 s; evaluations at steps 50 and 100 of
    # 16,384 tokens at 163,840 tok/s = 0.2 s; one periodic checkpoint (step 50) = 0.5 s; fixed 3 s.
    run = next(r for r in est["per_run"] if "/0.1M/" in r)
    assert est["per_run"][run] == pytest.approx((3.0 + 2.0 + 0.2 + 0.5) / 3600)
    assert est["source"][run] == "measured (test-cpu.json)"
    per_size = est["per_size"]
    assert per_size["0.1M"]["source"] == "measured (test-cpu.json)"
    assert per_size["0.16M"]["source"] == "audit.tokens_per_second"  # no measurement: the config's table
    assert per_size["0.16M"]["gpu_hours"] == pytest.approx(per_size["0.16M"]["runs"] * 102400 / 7000 / 3600)
    assert est["total"] == pytest.approx(sum(v["gpu_hours"] for v in per_size.values()))
    cfg["train"]["compile"] = True  # compiled runs use the warm-cache job
    compiled = gpu_hours(cfg, tmp_path)["per_run"]
    assert compiled[run] == pytest.approx((500.0 + 2.0 + 0.2 + 0.5) / 3600)  # the first of its shape
    second = [r for r in compiled if "/0.1M/" in r and r.split("/")[1] == run.split("/")[1]][1]
    assert compiled[second] == pytest.approx((99.0 + 2.0 + 0.2 + 0.5) / 3600)

    md = report(cfg, grid_table(cfg, tmp_path / "results", tmp_path))
    assert "0.1M: throughput and per-run overhead measured on `test-cpu` (test-cpu.json)" in md
    assert "0.16M, 0.2M: `audit.tokens_per_second` (tokens / rate; no per-run overhead)" in md
    n = per_size["0.16M"]["runs"]
    assert n == sum(r.size == "0.16M" for r in expand_runs(cfg))
    assert f"| 0.16M | {n} | {n * 102400 / 7000 / 3600:.4g} | audit.tokens_per_second |" in md


def test_paper_estimate_says_it_fell_back_without_a_gpu_measurement(tmp_path):
    cfg = paper_config()
    table = grid_table(cfg, tmp_path, tmp_path / "no-benchmarks")
    assert (table["est_source"] == "audit.tokens_per_second").all()
    rates = cfg["audit"]["tokens_per_second"]
    alone = sum(table["tokens"] / table["size"].map(rates)) / 3600  # every run trained from step 0
    assert table["est_gpu_hours_alone"].sum() == pytest.approx(alone)
    assert table["est_gpu_hours"].sum() < 0.6 * alone  # shared trunks
    assert f"No run costs measured for `audit.device: {cfg['audit']['device']}`" in report(cfg, table)


def test_cuda_measurement_counts_compiled_runs_by_default(tmp_path):
    cfg = paper_config()
    cfg["train"]["shared_trunk"] = False  # each run a job from step 0 (trunks: tests/test_trunks.py)
    write_costs(tmp_path, cfg["audit"]["device"], {"15M": {"warm": COST, "cold": {**COST, "fixed_s": 60.0}}}, "cuda")
    table = grid_table(cfg, tmp_path / "results", tmp_path)
    int6 = table[(table["size"] == "15M") & (table["bits"] == 6) & (table["length_mult"] == 1)]
    # 3,000 steps; evaluations every 500 (log 50): 6; periodic checkpoints every 250 below 3,000: 11
    seconds = int6.iloc[0]["tokens"] / 51200 + 6 * 1048576 / 163840 + 11 * 0.5
    # the shape's first run compiles from an empty cache, the others load it
    assert int6.iloc[0]["est_gpu_hours"] == pytest.approx((60.0 + seconds) / 3600)
    assert int6.iloc[1:]["est_gpu_hours"].tolist() == pytest.approx([(3.0 + seconds) / 3600] * (len(int6) - 1))
    r15 = table[table["size"] == "15M"]
    warm = [
        (3.0 + r.tokens / 51200 + evaluations(r.steps, cfg["train"]) * 1048576 / 163840 + (r.steps - 1) // 250 * 0.5)
        / 3600
        for r in r15.itertuples()
    ]
    cold = (r15["est_gpu_hours"] - warm) * 3600
    # one cold compile per bit-width: a longer run (length_mult) has the same graphs
    assert sorted(cold.round(6).value_counts().to_dict().items()) == [
        (0.0, len(r15) - r15["bits"].nunique()),
        (57.0, r15["bits"].nunique()),
    ]
    assert (table[table["size"] != "15M"]["est_source"] == "audit.tokens_per_second").all()


@pytest.mark.parametrize(
    "steps,log,every", [(100, 10, 50), (24, 4, 8), (25, 4, 8), (100, 10, 15), (7, 10, 50), (1, 1, 1)]
)
def test_evaluation_count_matches_the_training_loop(steps, log, every):
    # the condition train_run evaluates under, step by step
    loop = sum(1 for s in range(1, steps + 1) if (s % log == 0 or s == steps) and (s % every == 0 or s == steps))
    assert evaluations(steps, {"log_every": log, "eval_every": every}) == loop


def test_committed_cpu_measurement_is_used_by_the_default_config():
    est = gpu_hours(load_default_config(), REPO / "benchmarks" / "results")
    assert {v["source"] for v in est["per_size"].values()} == {"measured (cpu-x86-64-2core.json)"}
    assert est["total"] > 0


def test_paper_audit_shows_peak_memory_and_micro_batches_per_size(tmp_path):
    """The paper config names an 80 GB H100 (train.gpu_memory_gib 79): 350M at 64 x 1024 does not
    fit in one piece and trains in micro-batches; every run's count is in the table and the CSV."""
    from qatgrid.audit import memory_table
    from qatgrid.memory import GIB, step_memory

    cfg = paper_config()
    memory = memory_table(cfg).set_index("size")
    assert list(memory.index) == ["3M", "5M", "8M", "10M", "15M", "30M", "50M", "100M", "175M", "250M", "350M"]
    assert memory.loc["100M", "micro_batches"] == 1
    big = memory.loc["350M"]
    assert big["whole_gib"] > 79 and big["micro_batches"] >= 2 and big["peak_gib"] <= 79
    assert big["peak_gib"] == step_memory("350M", 1024, 64, 1024, 6, micro_batches=big["micro_batches"]).total / GIB
    table = grid_table(cfg, tmp_path)
    assert set(table.loc[table["size"] == "350M", "micro_batches"]) == {big["micro_batches"]}
    assert set(table.loc[table["size"] == "15M", "micro_batches"]) == {1}
    md = report(cfg, table)
    assert "## GPU memory per size" in md and "train.gpu_memory_gib: 79 GiB" in md
    assert f"| 350M | 64 | {big['whole_gib']:.4g} | {int(big['micro_batches'])} | {big['peak_gib']:.4g} |" in md


def test_default_audit_never_splits_a_step(tmp_path):
    """The CPU default names no GPU memory: every step in one piece."""
    from qatgrid.audit import memory_table

    cfg = load_default_config()
    assert set(memory_table(cfg)["micro_batches"]) == {1}
    assert set(grid_table(cfg, tmp_path)["micro_batches"]) == {1}
    assert "train.gpu_memory_gib is not set: every step in one piece" in report(cfg, grid_table(cfg, tmp_path))


def test_paper_audit_shows_packed_sizes_against_their_gpu(tmp_path):
    """3M, 5M and 8M train 8 to a GPU (resources.pack_sizes, pack_runs 8): whole-batch 5M and 8M
    steps would need more than the 79 GiB GPU together, so their plan cuts each step until the eight
    fit; the table shows the eight runs' total and its share, and the grid's runs the same count."""
    from qatgrid.audit import memory_table
    from qatgrid.memory import GIB, step_memory

    cfg = paper_config()
    memory = memory_table(cfg).set_index("size")
    for size in ("3M", "5M", "8M"):
        row = memory.loc[size]
        k = row["micro_batches"]
        assert row["runs_per_gpu"] == 8
        assert row["peak_gib"] == step_memory(size, 1024, 64, 1024, 6, micro_batches=k).total / GIB
        assert row["gpu_gib"] == pytest.approx(8 * row["peak_gib"]) and row["gpu_gib"] <= 79
        assert row["gpu_share"] == f"{row['gpu_gib'] / 79:.0%}"
        if k > 1:  # the fewest that fit: one count fewer would overfill the GPU
            fewer = step_memory(size, 1024, 64, 1024, 6, micro_batches=k // 2).total / GIB
            assert 8 * fewer > 79
    assert memory.loc["3M", "micro_batches"] == 1
    assert 8 * memory.loc["5M", "whole_gib"] > 79 and memory.loc["5M", "micro_batches"] == 2
    assert 8 * memory.loc["8M", "whole_gib"] > 79 and memory.loc["8M", "micro_batches"] == 2
    assert memory.loc["15M", "runs_per_gpu"] == 1 and memory.loc["15M", "gpu_gib"] == memory.loc["15M", "peak_gib"]
    table = grid_table(cfg, tmp_path)
    assert set(table.loc[table["size"] == "5M", "micro_batches"]) == {2}
    md = report(cfg, table)
    assert "or for a packed size its 1/8 share (resources.pack_runs)" in md
    row = memory.loc["8M"]
    assert f"| 8M | 64 | {row['whole_gib']:.4g} | 2 | {row['peak_gib']:.4g} | 8 | {row['gpu_gib']:.4g} |" in md
