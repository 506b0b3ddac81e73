import pandas as pd
import pytest

from qatgrid.footprint import footprint_table

PAPER = {
    "device_power_w": 700,
    "pue": 1.2,
    "carbon_g_per_kwh": 132,
    "renewable_g_per_kwh": [10, 50],
    "water_l_per_kwh": 1.8,
}


def test_hand_computed_footprint():
    runs = pd.DataFrame(
        {"device_name": ["NVIDIA H100", "NVIDIA H100", "cpu"], "wall_seconds": [3600.0, 7200.0, 1800.0]}
    )
    t = footprint_table(runs, planned_hours=1000.0, planned_runs=1345, cfg=PAPER).set_index("scope")
    h100 = t.loc["done on NVIDIA H100"]
    assert h100["device_hours"] == pytest.approx(3.0) and h100["runs"] == 2
    assert h100["energy_kwh"] == pytest.approx(3.0 * 0.7 * 1.2)  # 2.52 kWh
    assert h100["carbon_kg_grid"] == pytest.approx(2.52 * 0.132)
    assert h100["carbon_kg_renewable_low"] == pytest.approx(2.52 * 0.010)
    assert h100["water_l"] == pytest.approx(2.52 * 1.8)
    grid = t.loc["whole grid (projected)"]
    assert grid["energy_kwh"] == pytest.approx(840.0) and grid["carbon_kg_grid"] == pytest.approx(110.88)
    assert grid["runs"] == 1345


def test_a_shared_trunk_counts_once():
    """Two runs branched off one trunk at 1,000 and 2,000 s (wall_seconds include the trunk up to
    each branch step), one trained alone: 1,500 + 500 own seconds, the trunk's 2,000 once, 900 alone."""
    runs = pd.DataFrame(
        {
            "device_name": ["cpu"] * 3,
            "wall_seconds": [2500.0, 2500.0, 900.0],
            "trunk": ["p/int6/0.1M/trunk/lr1x/muon-linear-x1/seed0"] * 2 + [None],
            "trunk_seconds": [1000.0, 2000.0, 0.0],
        }
    )
    t = footprint_table(runs, planned_hours=1.0, planned_runs=3, cfg=PAPER).set_index("scope")
    assert t.loc["done on cpu", "device_hours"] == pytest.approx((1500 + 500 + 2000 + 900) / 3600)
