"""Energy, carbon and water of the runs done and of the whole grid (Henderson et al. 2020 style).

energy (kWh) = device-hours x device power (kW) x PUE
carbon (kg)  = energy x grid intensity (g CO2eq/kWh) / 1000
water (L)    = energy x indirect water intensity (L/kWh)
Defaults follow the paper: 132 g/kWh (Spanish grid, 2025), 10-50 g/kWh for a renewable
contract, 1.8 L/kWh.
"""

from __future__ import annotations

import pandas as pd


def footprint_row(scope: str, device_hours: float, runs: int, cfg: dict) -> dict:
    energy = device_hours * cfg["device_power_w"] / 1000 * cfg["pue"]
    low, high = cfg["renewable_g_per_kwh"]
    return {
        "scope": scope,
        "runs": runs,
        "device_hours": device_hours,
        "energy_kwh": energy,
        "carbon_kg_grid": energy * cfg["carbon_g_per_kwh"] / 1000,
        "carbon_kg_renewable_low": energy * low / 1000,
        "carbon_kg_renewable_high": energy * high / 1000,
        "water_l": energy * cfg["water_l_per_kwh"],
    }


def device_seconds(runs: pd.DataFrame) -> float:
    """Seconds the runs held a device. A branched run's wall_seconds include its shared trunk's
    (trunk_seconds, up to its branch step): each trunk counts once, for as far as it was trained."""
    if "trunk" not in runs or runs["trunk"].isna().all():
        return float(runs["wall_seconds"].sum())
    shared = runs["trunk"].notna()
    own = (runs["wall_seconds"] - runs["trunk_seconds"].where(shared, 0.0)).sum()
    return float(own + runs[shared].groupby("trunk")["trunk_seconds"].max().sum())


def footprint_table(runs: pd.DataFrame, planned_hours: float, planned_runs: int, cfg: dict) -> pd.DataFrame:
    """Rows: runs done (measured device time, per device) and the whole grid (projected)."""
    rows = [
        footprint_row(f"done on {device}", device_seconds(g) / 3600, len(g), cfg)
        for device, g in runs.groupby("device_name")
    ]
    rows.append(footprint_row("whole grid (projected)", planned_hours, planned_runs, cfg))
    return pd.DataFrame(rows)
