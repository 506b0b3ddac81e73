"""What the default pipeline must show once `snakemake --cores all` has run it: every Phase 2 cell's
optimal warmdown lies strictly inside the levels it offers (the study's finding is an interior
optimum; an optimum on the grid's edge would say the grid does not bracket it). Prints the
optima, the wall time it is given and the number of runs and figures; exits 1 on an edge optimum.

    python .ci/check_default.py [--seconds N] [--results results]
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections import defaultdict
from pathlib import Path

from qatgrid.stats import CELL  # the columns that name a cell in the tables


def read(path: Path) -> list[dict]:
    if not path.exists():
        sys.exit(f"missing {path}: did the default pipeline run?")
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, help="the pipeline's wall time, to print")
    ap.add_argument("--results", type=Path, default=Path("results"))
    args = ap.parse_args()
    tables = args.results / "tables"
    levels = defaultdict(set)
    for row in read(tables / "loss_by_warmdown.csv"):
        levels[tuple(row[k] for k in CELL)].add(float(row["warmdown_frac"]))
    edge = []
    cells = [row for row in read(tables / "optimal_warmdown.csv") if row["phase"] == "phase2"]
    if not cells:
        sys.exit(f"no Phase 2 cells in {tables / 'optimal_warmdown.csv'}")
    for row in cells:
        offered = sorted(levels[tuple(row[k] for k in CELL)])
        best = float(row["best_warmdown"])
        where = "interior" if offered[0] < best < offered[-1] else "EDGE"
        label = "FP16" if row["bits"] == "16" else f"INT{row['bits']}"
        print(
            f"phase2 {label:>5} {row['size']:>6}: optimum {best:.0%} of "
            f"{'/'.join(f'{x:.0%}' for x in offered)} ({where}), mean loss {float(row['best_mean_loss']):.4f}"
        )
        if where == "EDGE":
            edge.append(row)
    runs = len(read(tables / "runs.csv"))
    figures = len(list((args.results / "figures").glob("*.pdf")))
    timing = f" in {args.seconds:.0f} s" if args.seconds is not None else ""
    print(
        f"default pipeline{timing}: {runs} runs, {figures} figures (PDF), "
        f"optimum interior in {len(cells) - len(edge)}/{len(cells)} Phase 2 cells"
    )
    return 1 if edge else 0


if __name__ == "__main__":
    sys.exit(main())
