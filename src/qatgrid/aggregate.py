"""Per-run JSON files -> tidy tables. The runs table's columns are the contract
the analyses rely on (documented in config/README.md, versioned by schema_version)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .io import atomic_path, read_json
from .runs import parse_run_id

RUN_COLUMNS = [
    "run_id",
    "phase",
    "bits",
    "size",
    "n_params",
    "warmdown_frac",
    "lr_mult",
    "lr",
    "seed",
    "optimizer",
    "schedule",
    "length_mult",
    "steps",
    "steps_done",
    "tokens",
    "final_val_loss",
    "final_val_bpb",
    "diverged",
    "wall_seconds",
    "device",
    "device_name",
    "schema_version",
]
# Added with the batch-size and data-order axes; metrics written before them lack these, and
# such runs trained at train.batch_size (unknown here: left empty) with batches ordered by `seed`.
# Added with shared trunks (qatgrid.trunks): the trunk a run branched off (empty: trained alone)
# and the seconds of that trunk its wall_seconds include.
OPTIONAL_COLUMNS = ["batch_size", "data_seed", "trunk", "trunk_seconds"]


def load_runs(metric_paths: list[str]) -> pd.DataFrame:
    rows = []
    for path in metric_paths:
        m = read_json(path)
        missing = [c for c in RUN_COLUMNS if c not in m]
        if missing:
            raise ValueError(f"{path}: metrics lack {', '.join(missing)} (schema_version {m.get('schema_version')})")
        rows.append(
            {c: m[c] for c in RUN_COLUMNS}
            | {"batch_size": m.get("batch_size"), "data_seed": m.get("data_seed", m["seed"])}
            | {"trunk": m.get("trunk"), "trunk_seconds": float(m.get("trunk_seconds") or 0.0)}
        )
    df = pd.DataFrame(rows, columns=RUN_COLUMNS + OPTIONAL_COLUMNS)
    return df.astype({"final_val_loss": float, "final_val_bpb": float, "diverged": bool})


def load_probes(probe_paths: list[str], grid_bits: int) -> pd.DataFrame:
    """One row per probed run: its distance to the `grid_bits` grid."""
    rows = []
    for path in probe_paths:
        p = read_json(path)
        if str(grid_bits) not in p["grids"]:
            raise ValueError(f"{path}: no distance to the INT{grid_bits} grid (has {', '.join(p['grids'])})")
        grid = p["grids"][str(grid_bits)]
        run = parse_run_id(p["run_id"])
        rows.append(
            {
                "run_id": p["run_id"],
                **run.as_dict(),
                "grid_bits": grid_bits,
                "mean_distance": grid["mean_distance"],
                "n_weights": grid["n_weights"],
            }
        )
    return pd.DataFrame(rows)


def write_table(df: pd.DataFrame, path: str | Path) -> None:
    """CSV or Parquet by suffix, written atomically."""
    path = Path(path)
    with atomic_path(path) as tmp:
        if path.suffix == ".parquet":
            df.to_parquet(tmp, index=False)
        else:
            df.to_csv(tmp, index=False)
