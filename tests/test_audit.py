import json

import pytest
import yaml

from conftest import REPO, load_default_config
from qatgrid.audit import AuditMismatch, check_counts, grid_table, phase_group, write_audit


def paper_config() -> dict:
    """config/paper.yaml merged over the default, as `--configfile` does (mappings merge, lists replace)."""
    base, paper = load_default_config(), yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    for key, value in paper.items():
        base[key] = {**base[key], **value} if isinstance(value, dict) and isinstance(base.get(key), dict) else value
    return base


def test_paper_grid_counts_match_the_study(tmp_path):
    table = grid_table(paper_config(), tmp_path)
    assert len(table) == 1345
    assert table.groupby("phase_group").size().to_dict() == {"phase2": 720, "phase5": 625}
    assert (table["status"] == "missing").all()
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
    assert [status[i] for i in ids[:5]] == ["done", "diverged", "partial", "failed", "missing"]
    assert status.value_counts()["missing"] == 68
    md = (tmp_path / "grid.md").read_text()
    assert "phase2: 48 planned, 48 expected — OK" in md and "total: 72 planned, 72 expected — OK" in md and f"| {ids[1]} | diverged |" in md


def test_phase_group_and_count_check():
    assert phase_group("phase5-int4") == "phase5" and phase_group("phase2") == "phase2"
    import pandas as pd
    t = pd.DataFrame({"phase_group": ["a", "a", "b"], "run_id": ["1", "2", "3"]})
    assert check_counts(t, {"a": 2, "b": 1, "total": 3}) == []
    assert check_counts(t, {"c": 1}) == ["c: grid has 0 runs, expected 1"]
