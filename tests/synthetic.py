"""Synthetic run tables with planted effects, shaped like the runs table the pipeline writes."""
import numpy as np
import pandas as pd

from qatgrid.sizes import size_to_number


def runs_table(cells: dict, seeds: int = 10, noise: float = 0.01, rng_seed: int = 0, phase: str = "phase2",
               warmdowns=(0.2, 0.33, 0.5), seed_effect: float = 0.05) -> pd.DataFrame:
    """cells: {(bits, size): {warmdown: mean loss}}; a shared per-seed offset makes pairing matter."""
    rng = np.random.default_rng(rng_seed)
    offsets = rng.normal(0, seed_effect, seeds)
    rows = []
    for (bits, size), means in cells.items():
        for wd in warmdowns:
            for s in range(seeds):
                rows.append({"run_id": f"{phase}/{bits}/{size}/{wd}/{s}", "phase": phase, "bits": bits, "size": size,
                             "n_params": int(size_to_number(size)), "warmdown_frac": wd, "lr_mult": 1.0, "lr": 0.02,
                             "seed": s, "optimizer": "muon", "schedule": "linear", "length_mult": 1,
                             "final_val_loss": means[wd] + offsets[s] + rng.normal(0, noise), "diverged": False})
    return pd.DataFrame(rows)
