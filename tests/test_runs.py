import re
from pathlib import Path

import pytest
from conftest import load_default_config

from qatgrid.resources import job_resources
from qatgrid.runs import RUN_ID_WILDCARD, Run, expand_runs, first_phase, parse_run_id, phase_key, run_id


def test_run_id_is_readable_and_round_trips():
    run = Run("phase2", 6, "15M", 0.33, 1.0, 0)
    assert run.id == "phase2/int6/15M/wd33/lr1x/muon-linear-x1/seed0"
    assert parse_run_id(run.id) == run
    odd = Run("phase5", 4, "3M", 0.125, 0.5, 9, "adamw", "cosine", 3)
    assert odd.id == "phase5/int4/3M/wd12.5/lr0.5x/adamw-cosine-x3/seed9"
    assert parse_run_id(odd.id) == odd
    assert parse_run_id(run_id(Run("p", 16, "0.1M", 0.2, 2.0, 1))).bits == 16


def test_parse_rejects_garbage_with_example():
    with pytest.raises(ValueError, match="not a run id: 'phase2/int6'.*expected e.g."):
        parse_run_id("phase2/int6")


def test_expand_counts_cartesian_product_and_defaults():
    cfg = {
        "sweeps": [
            {
                "phase": "p",
                "bits": [16, 6],
                "sizes": ["3M", "5M", "8M"],
                "warmdown_fracs": [0.2, 0.33],
                "lr_mults": [0.5, 1, 2],
                "seeds": [0, 1],
            },
            {
                "phase": "q",
                "bits": [4],
                "sizes": ["3M"],
                "warmdown_fracs": [0.33],
                "seeds": [0, 1, 2],
                "optimizers": ["adamw"],
                "schedules": ["cosine"],
                "length_mults": [3],
            },
        ]
    }
    runs = expand_runs(cfg)
    assert len(runs) == 2 * 3 * 2 * 3 * 2 + 3
    assert len({r.id for r in runs}) == len(runs)
    assert {r.optimizer for r in runs if r.phase == "p"} == {"muon"}
    assert {(r.optimizer, r.schedule, r.length_mult) for r in runs if r.phase == "q"} == {("adamw", "cosine", 3)}


def test_duplicate_runs_across_sweeps_are_an_error():
    sweep = {"phase": "p", "bits": [6], "sizes": ["3M"], "warmdown_fracs": [0.33], "seeds": [0]}
    with pytest.raises(ValueError, match="produced by sweeps 0 and 1"):
        expand_runs({"sweeps": [sweep, dict(sweep)]})


def test_missing_axis_names_the_axis():
    with pytest.raises(ValueError, match="lacks required axes: seeds"):
        expand_runs({"sweeps": [{"phase": "p", "bits": [6], "sizes": ["3M"], "warmdown_fracs": [0.33]}]})


def test_default_grid_size():
    runs = expand_runs(load_default_config())
    # phase2 + INT4 + 2 arms + held-out + phase6 (batch pair, data orders, INT3/INT2/ternary)
    assert len(runs) == 3 * 2 * 4 * 2 + 2 * 2 * 3 + 2 * (2 * 2) + 2 * 2 + (2 * 2 + 2 * 2 + 3 * 2)


def test_every_default_run_id_matches_the_snakemake_wildcard():
    for run in expand_runs(load_default_config()):
        assert re.fullmatch(RUN_ID_WILDCARD, run.id)
    assert not re.fullmatch(RUN_ID_WILDCARD, "phase2/int6/15M/wd33/lr1x/seed0")


def test_job_resources_per_size_and_doubling_on_retry():
    cfg = {
        "train": {"threads": 4},
        "resources": {
            "default": {"runtime_min": 60, "mem_mb": 16000},
            "sizes": {
                "3M": {"runtime_min": 40, "mem_mb": 4000, "threads": 2},
                "100M": {"runtime_min": 150, "mem_mb": 24000},
            },
        },
    }
    small, large, other = (Run("p", 6, size, 0.33, 1.0, 0) for size in ("3M", "100M", "15M"))
    assert job_resources(cfg, small) == {"runtime": 40, "mem_mb": 4000, "threads": 2}
    assert [job_resources(cfg, large, attempt)["runtime"] for attempt in (1, 2, 3)] == [150, 300, 600]
    assert job_resources(cfg, large)["threads"] == 4  # train.threads when the size names none
    assert job_resources(cfg, other, attempt=2) == {"runtime": 120, "mem_mb": 16000, "threads": 4}


def test_train_config_takes_its_keys_and_defaults_from_the_schema():
    """The typed TrainConfig has a field per train key of the schema; the keys the schema gives a
    default may be left out and take the schema's (written nowhere else); a required one may not."""
    import dataclasses
    from pathlib import Path

    import pytest
    import yaml

    from qatgrid.config import NOT_TRAIN, TrainConfig, schema_defaults

    schema = yaml.safe_load((Path(__file__).parents[1] / "config" / "schema" / "config.schema.yaml").read_text())
    train = schema["properties"]["train"]
    fields = {f.name for f in dataclasses.fields(TrainConfig)} - set(NOT_TRAIN)
    assert fields == set(train["properties"])
    assert schema_defaults("train") == {
        "precision": "auto",
        "compile": "auto",
        "hold_tokens": True,
        "shared_trunk": True,
        "trunk_jobs": "segments",
        "lr_batch_rule": "sqrt",
        "batches": "stream",
        "stream_spans": 1,
        "gpu_memory_gib": None,
        "micro_batches": "auto",
    }
    assert set(schema_defaults("train")) | set(train["required"]) == fields
    required = {key: load_default_config()["train"][key] for key in train["required"]}
    tc = TrainConfig.from_config({"train": required})
    assert {key: getattr(tc, key) for key in schema_defaults("train")} == schema_defaults("train")
    with pytest.raises(ValueError, match=r"train: missing key\(s\) \['diverge_loss'\]"):
        TrainConfig.from_config({"train": {k: v for k, v in required.items() if k != "diverge_loss"}})
    with pytest.raises(ValueError, match=r"train: unknown key\(s\) \['stpes'\]"):
        TrainConfig.from_config({"train": {"stpes": 3}})


def test_every_loader_merges_a_nested_key_over_the_rest(tmp_path):
    """A --configfile that sets one key of train.lr and of train.muon_momentum keeps the others, for
    the loader (the Snakefile, qatgrid status and the tests call it) and for the benchmarks' and the
    GPU check's training settings (which once updated the train section shallowly, dropping them)."""
    import sys

    import yaml

    from qatgrid import status
    from qatgrid.config import load_config

    sys.path.insert(0, str(Path(__file__).parents[1] / "benchmarks"))
    import common

    layer = tmp_path / "lr.yaml"
    layer.write_text(yaml.safe_dump({"train": {"lr": {"muon": 0.05}, "muon_momentum": {"warmup_steps": 7}}}))
    default = load_default_config()["train"]
    expected_lr = {**default["lr"], "muon": 0.05}
    expected_momentum = {**default["muon_momentum"], "warmup_steps": 7}
    assert set(expected_lr) == {"muon", "embed", "scalar", "adamw"} and expected_lr["embed"] == 0.02
    for train in (load_config([layer])["train"], common.train_settings(layer, False, 30)):
        assert train["lr"] == expected_lr and train["muon_momentum"] == expected_momentum
        assert train["batch_size"] == default["batch_size"] and train["hold_tokens"] is True
    assert status.load_config is load_config
    overridden = load_config(overrides={"train": {"lr": {"adamw": 0.001}}})["train"]["lr"]  # as --config
    assert overridden == {**default["lr"], "adamw": 0.001}


def test_phases_sort_by_number_then_name_so_phase2_comes_before_phase10():
    names = ["phase10", "phase2", "phase5-int4", "phase5-adamw", "phase6-bs16", "phase6-bs4"]
    assert sorted(names, key=phase_key) == [
        "phase2",
        "phase5-adamw",
        "phase5-int4",
        "phase6-bs16",
        "phase6-bs4",
        "phase10",
    ]
    assert min(["phase10", "phase2"]) == "phase10"  # string order, which first_phase must not use
    assert first_phase(["phase10", "phase2"]) == "phase2"
    assert first_phase(["phase6-data", "phase5-int4", "phase5-heldout"]) == "phase5-heldout"


def test_a_cell_run_in_phase2_and_phase10_is_drawn_from_phase2():
    import pandas as pd

    from qatgrid.plots.registry import first_base_cells, robustness_runs
    from qatgrid.stats import first_phase_rows

    runs = [Run(p, 6, "3M", wd, 1.0, 0) for p in ("phase10", "phase2") for wd in (0.1, 0.33)]
    assert {r.phase for r in first_base_cells(runs, {})} == {"phase2"}
    arm = Run("phase10", 6, "3M", 0.33, 1.0, 0, optimizer="adamw")
    assert {r.phase for r in robustness_runs([*runs, arm], {}) if r.is_base_arm} == {"phase2"}
    df = pd.DataFrame([{"phase": r.phase, "bits": r.bits, "size": r.size} for r in runs])
    assert first_phase_rows(df)["phase"].tolist() == ["phase2", "phase2"]
