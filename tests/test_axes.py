"""The batch-size and data-order axes, bit-width names, their config errors, and config/extension.yaml."""

import re

import pytest
from conftest import REPO, load_default_config, merged_config

from qatgrid.audit import check_counts, grid_table
from qatgrid.config import check_config, schema_defaults
from qatgrid.runs import RUN_ID_WILDCARD, Run, expand_runs, parse_run_id
from qatgrid.schedule import lr_batch_factor, run_batch_size, run_data_seed, total_steps, total_tokens

TRAIN = {**schema_defaults("train"), "steps": 100, "batch_size": 8, "seq_len": 128}


def merged(name: str) -> dict:
    """config/<name> merged over the default, as `--configfile` does."""
    return merged_config(name)


def test_old_ids_unchanged_new_axes_get_a_suffix_and_round_trip():
    plain = Run("phase2", 6, "15M", 0.33, 1.0, 0)
    assert plain.id == "phase2/int6/15M/wd33/lr1x/muon-linear-x1/seed0"
    cases = {
        Run(
            "phase6-bs32", 8, "15M", 0.1, 1.0, 4, batch_size=32
        ): "phase6-bs32/int8/15M/wd10/lr1x/muon-linear-x1/seed4-bs32",
        Run(
            "phase6-data", 16, "50M", 0.5, 1.0, 3, data_seed=2
        ): "phase6-data/fp16/50M/wd50/lr1x/muon-linear-x1/seed3-data2",
        Run(
            "p", 1, "3M", 0.33, 2.0, 9, batch_size=128, data_seed=0
        ): "p/ternary/3M/wd33/lr2x/muon-linear-x1/seed9-bs128-data0",
        Run("p", 2, "3M", 0.33, 1.0, 1): "p/int2/3M/wd33/lr1x/muon-linear-x1/seed1",
    }
    for run, rid in {plain: plain.id, **cases}.items():
        assert run.id == rid
        assert parse_run_id(rid) == run
        assert re.fullmatch(RUN_ID_WILDCARD, rid)
    with pytest.raises(ValueError, match="not a run id"):
        parse_run_id("p/int2/3M/wd33/lr1x/muon-linear-x1/seed1-data2-bs4")  # one order only


def test_default_grid_keeps_its_earlier_ids():
    ids = [r.id for r in expand_runs(load_default_config())]
    assert ids[0] == "phase2/fp16/0.1M/wd10/lr1x/muon-linear-x1/seed0"
    assert not any("-bs" in i or "-data" in i for i in ids if not i.startswith("phase6"))
    assert sum(i.endswith("-bs4") for i in ids) == sum(i.endswith("-bs16") for i in ids) == 2
    assert {parse_run_id(i).data_seed for i in ids if i.startswith("phase6-data")} == {0, 1}
    assert {parse_run_id(i).bits for i in ids if i.startswith("phase6-lowbit")} == {3, 2, 1}


def test_steps_tokens_and_lr_per_batch_size():
    base, half, double = (
        Run("p", 6, "3M", 0.33, 1.0, 0),
        Run("p", 6, "3M", 0.33, 1.0, 0, batch_size=4),
        Run("p", 6, "3M", 0.33, 1.0, 0, batch_size=16),
    )
    assert [total_steps(TRAIN, r) for r in (base, half, double)] == [100, 200, 50]
    assert {total_tokens(TRAIN, r) for r in (base, half, double)} == {100 * 8 * 128}
    free = {**TRAIN, "hold_tokens": False}
    assert [total_steps(free, r) for r in (base, half, double)] == [100, 100, 100]
    assert total_tokens(free, double) == 100 * 16 * 128
    assert lr_batch_factor(TRAIN, double) == pytest.approx(2**0.5)  # sqrt is the default rule
    assert lr_batch_factor({**TRAIN, "lr_batch_rule": "linear"}, half) == 0.5
    assert lr_batch_factor({**TRAIN, "lr_batch_rule": "hold"}, double) == 1.0
    assert lr_batch_factor(TRAIN, base) == 1.0 and run_batch_size(TRAIN, base) == 8
    long = Run("p", 6, "3M", 0.33, 1.0, 0, length_mult=3, batch_size=16)
    assert total_steps(TRAIN, long) == 150


def test_off_the_data_order_axis_a_run_has_no_data_seed():
    assert run_data_seed(Run("p", 6, "3M", 0.33, 1.0, 7)) is None  # off the axis: the default order
    assert run_data_seed(Run("p", 6, "3M", 0.33, 1.0, 7, data_seed=1)) == 1


def with_sweep(**sweep) -> dict:
    cfg = load_default_config()
    cfg["sweeps"].append(
        {"phase": "bad", "bits": [6], "sizes": ["0.1M"], "warmdown_fracs": [0.33], "seeds": [0], **sweep}
    )
    return cfg


def test_bit_width_names_and_unknown_ones():
    cfg = with_sweep(bits=["ternary", "int3", 2, "fp16"])
    assert {r.bits for r in check_config(cfg) if r.phase == "bad"} == {1, 3, 2, 16}
    i = len(cfg["sweeps"]) - 1
    for bad in ("int5", 1, 5, "binary", True):
        with pytest.raises(
            ValueError,
            match=rf"sweeps\[{i}\]\.bits: unknown bit-width {re.escape(repr(bad))} "
            r"\(expected one of 16, 8, 6, 4, 3, 2 or 'ternary'\)",
        ):
            check_config(with_sweep(bits=[6, bad]))


def test_batch_size_must_divide_a_held_budget():
    cfg = with_sweep(batch_sizes=[3])
    i = len(cfg["sweeps"]) - 1
    with pytest.raises(
        ValueError,
        match=rf"sweeps\[{i}\]\.batch_sizes: 3 does not divide the held token budget "
        r"of 100 steps x train.batch_size 8",
    ):
        check_config(cfg)
    cfg["train"]["hold_tokens"] = False
    assert any(r.batch_size == 3 for r in check_config(cfg))
    with pytest.raises(
        ValueError,
        match=rf"sweeps\[{i}\]\.batch_sizes: 800 leaves 1 steps, not more than "
        r"train.warmup_steps \(10\)",
    ):
        check_config(with_sweep(batch_sizes=[800]))
    with pytest.raises(ValueError, match=rf"sweeps\[{i}\]\.batch_sizes lists 2 sizes \[4, 16\]; give each"):
        check_config(with_sweep(batch_sizes=[4, 16]))


def test_a_single_data_order_cannot_split_the_variance():
    cfg = with_sweep(data_seeds=[3])
    i = len(cfg["sweeps"]) - 1
    with pytest.raises(
        ValueError,
        match=rf"sweeps\[{i}\]\.data_seeds has 1 level\(s\) \[3\]; separating init-seed "
        "from data-order variance needs at least two",
    ):
        check_config(cfg)


def test_extension_counts_steps_and_gpu_hours(tmp_path):
    cfg = merged("extension.yaml")
    runs = check_config(cfg)
    table = grid_table(cfg, tmp_path)
    assert len(runs) == len(table) == 1240
    assert check_counts(table, cfg["audit"]["expected_runs"]) == []
    assert table.groupby("phase").size().to_dict() == {
        "phase6-bs32": 120,
        "phase6-bs128": 120,
        "phase6-data": 360,
        "phase6-lowbit": 480,
        "phase5-int4": 160,
    }
    steps = table.groupby("phase")["steps"].unique().to_dict()
    assert [list(steps[p]) for p in ("phase6-bs32", "phase6-bs128", "phase6-data")] == [[6000], [1500], [3000]]
    assert table.groupby("phase")["tokens"].nunique().eq(1).all() and table["tokens"].nunique() == 1
    low = table[table["phase"] == "phase6-lowbit"]
    assert set(low["bits_label"]) == {"int3", "int2", "ternary"} and low["seed"].nunique() == 10
    assert set(low["size"]) == {"3M", "5M", "8M", "10M", "15M", "30M", "50M", "100M"}
    assert set(low["warmdown_frac"]) == {0.1, 0.33}
    data = table[table["phase"] == "phase6-data"]
    assert data.groupby(["bits", "size", "warmdown_frac"]).size().eq(15).all()  # 5 init x 3 data orders
    assert table["est_gpu_hours"].notna().all()
    assert table["est_gpu_hours_alone"].sum() == pytest.approx(60.94, abs=0.01)  # every run from step 0
    assert table["est_gpu_hours"].sum() == pytest.approx(35.69, abs=0.01)  # warmdowns off shared trunks


def test_extension_shares_the_papers_settings_and_int4_ids():
    ext, paper = merged("extension.yaml"), merged("paper.yaml")
    for key in ("data", "probe", "footprint", "resources"):
        assert ext[key] == paper[key], key
    train = {k: v for k, v in ext["train"].items() if k not in ("hold_tokens", "lr_batch_rule")}
    assert train == {k: v for k, v in paper["train"].items() if k not in ("hold_tokens", "lr_batch_rule")}
    assert ext["audit"]["tokens_per_second"] == paper["audit"]["tokens_per_second"]
    int4 = [s for s in ext["sweeps"] if s["phase"] == "phase5-int4"]
    assert (
        len(int4) == 1 and int4[0]["sizes"] == [s for s in paper["sweeps"] if s["phase"] == "phase5-int4"][0]["sizes"]
    )


def test_schema_accepts_the_new_keys_and_leaves_bad_levels_to_check_config():
    from snakemake.utils import validate

    schema = str(REPO / "config" / "schema" / "config.schema.yaml")
    validate(merged("extension.yaml"), schema)
    cfg = with_sweep(bits=["int5"], data_seeds=[3])
    validate(cfg, schema)  # the schema lets these through: check_config names the sweep
    with pytest.raises(ValueError, match=r"sweeps\[\d+\]\.bits: unknown bit-width 'int5'"):
        check_config(cfg)
    cfg = load_default_config()
    cfg["train"]["lr_batch_rule"] = "cube"
    with pytest.raises(Exception, match="cube"):
        validate(cfg, schema)
