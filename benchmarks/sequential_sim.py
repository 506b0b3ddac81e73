"""Operating characteristics of sequential seeds (qatgrid.sequential) on planted tables.

Prints and writes benchmarks/results/sequential-sim.{md,json}:
1. the Lan-DeMets boundaries beside published values;
2. the family-wise false-positive rate under no effect, with its Monte Carlo error, for the study's
   cell shapes (INT4: 2 warmdowns, 10 seeds; Phase 2: 4 warmdowns x 3 LRs, 5 seeds; extended
   sizes: 3 warmdowns) and the least favourable case (two warmdowns tied best, the others far worse);
3. the paper-shaped grid (47 cells, 1,345 runs at the fixed design): verdict agreement with the
   fixed design on the same tables, per cell and per grid, and the expected seeds and runs.

Units: losses in units of the paired-difference sd (`sequential.planted_losses`), so an effect is
the standardised paired effect (mean difference / sd of the per-seed differences).

    python benchmarks/sequential_sim.py            # ~1 min on 2 cores
    python benchmarks/sequential_sim.py --reps 500 # quicker, larger Monte Carlo error
"""

from __future__ import annotations

import argparse
import math
import time
from unittest import mock

import numpy as np
from common import RESULTS
from scipy import stats as sps

from qatgrid import sequential as sq
from qatgrid.io import atomic_path, write_json

# Published Lan-DeMets O'Brien-Fleming bounds, symmetric two-sided, 0.025 per side, equal spacing
# (gsDesign test.type=2 / ldbounds; DESIGN convention).
PUBLISHED = {("obrien-fleming", 2): [2.9626, 1.9686], ("obrien-fleming", 3): [3.7103, 2.5114, 1.9930]}

WD4, WD3, WD_INT4 = (0.1, 0.2, 0.33, 0.5), (0.2, 0.33, 0.5), (0.1, 0.33)
LR_PENALTY = (1.0, 0.0, 1.0)  # ASSUMED: the 0.5x and 2x LRs lose 1 sd to 1x in every cell
LOOKS5, LOOKS10 = (3, 5), (3, 5, 10)


def parabola(levels, scale_at: float, scale: float):
    """Standardised effect of each warmdown against 33%: scale * ((w - 0.33) / (scale_at - 0.33))^2."""
    return [scale * ((w - 0.33) / (scale_at - 0.33)) ** 2 for w in levels]


def grid_cells(pattern: str):
    """The paper grid's cells: (group, count, warmdowns, LR penalties, fixed seeds, effects per cell).
    pattern 'borderline': the warmdown curve's wd10 contrast equals INT4's decisive one (4.5 sd),
    which leaves wd20 at 1.4 sd; 'decisive': wd20 at 3 sd (wd10 9.4 sd); 'strong': wd20 at 5 sd."""
    eff4 = {
        "borderline": parabola(WD4, 0.1, 4.5),
        "decisive": parabola(WD4, 0.2, 3.0),
        "strong": parabola(WD4, 0.2, 5.0),
    }[pattern]
    eff3 = [eff4[WD4.index(w)] for w in WD3]
    int4 = [[0.0, 0.0]] * 6 + [[4.0, 0.0], [4.7, 0.0]]  # 3M..30M null; 50M, 100M: z ~ 12.6, 14.9 at 10 seeds
    return [
        ("phase2", 12, WD4, LR_PENALTY, 5, [eff4] * 12),
        ("phase5-adamw", 3, WD4, (), 5, [eff4] * 3),
        ("phase5-cosine", 3, WD4, (), 5, [eff4] * 3),
        ("phase5-length", 6, WD4, (), 5, [eff4] * 6),
        ("phase5-sizes", 15, WD3, (), 5, [eff3] * 15),
        ("phase5-int4 null", 6, WD_INT4, (), 10, int4[:6]),
        ("phase5-int4 50M/100M", 2, WD_INT4, (), 10, int4[6:]),
    ]


def design_for(n_fixed: int, spending: str, futility: float) -> sq.Design:
    return sq.Design(LOOKS5 if n_fixed == 5 else LOOKS10, 0.05, spending, futility)


def false_claims(res: dict, effects) -> tuple[np.ndarray, np.ndarray]:
    """Per cell: (some comparison significant although the alternative is not truly worse than the
    declared best, a decisive verdict although some alternative is not truly worse)."""
    e = np.asarray(effects, dtype=float)
    not_worse = e[None, :] <= e[res["best"]][:, None]
    not_worse[np.arange(e.size)[None, :] == res["best"][:, None]] = False  # the best itself
    return (res["significant"] & not_worse).any(axis=1), res["decisive"] & not_worse.any(axis=1)


def nominal_levels_uncalibrated(design: sq.Design, k: int = 1) -> np.ndarray:
    """The significance-level approach's levels (z boundaries' nominal tails), for comparison."""
    return sps.norm.sf(sq.z_boundaries(design, k))


def fwer(reps: int, rng) -> list[dict]:
    cases = [
        ("INT4 cell, no effect", (0.0, 0.0), (), 10),
        ("two warmdowns, 5 seeds, no effect", (0.0, 0.0), (), 5),
        ("extended-sizes cell, no effect", (0.0, 0.0, 0.0), (), 5),
        ("Phase 2 cell (4 wd x 3 LR), no effect", (0.0, 0.0, 0.0, 0.0), LR_PENALTY, 5),
        ("Phase 2 cell, two warmdowns tied best, two 5 sd worse", (0.0, 0.0, 5.0, 5.0), LR_PENALTY, 5),
    ]
    rows = []
    for name, effects, lrp, n in cases:
        for spending in sq.SPENDING:
            for futility, t_scale in ((0.0, "calibrated"), (0.1, "calibrated"), (0.0, "nominal")):
                d = design_for(n, spending, futility)
                if t_scale == "nominal":  # decide_arrays reads the levels through this module attribute
                    with mock.patch.object(sq, "nominal_levels", nominal_levels_uncalibrated):
                        out = sq.simulate(d, effects, reps, rng, lrp)
                else:
                    out = sq.simulate(d, effects, reps, rng, lrp)
                (any_s, dec_s), (any_f, dec_f) = (false_claims(out[x], effects) for x in ("sequential", "fixed"))
                row = {"case": name, "looks": list(d.looks), "spending": spending, "futility": futility}
                row |= {"t_boundaries": t_scale, "reps": reps, "mean_seeds": float(out["sequential"]["seeds"].mean())}
                for key, x in (("any", any_s), ("decisive", dec_s), ("fixed_any", any_f), ("fixed_decisive", dec_f)):
                    p = float(x.mean())
                    row[key], row[key + "_se"] = p, math.sqrt(p * (1 - p) / reps)
                rows.append(row)
    return rows


def grid(pattern: str, spending: str, futility: float, reps: int, rng) -> dict:
    """`reps` planted paper grids; each cell's sequential and fixed verdicts on the same table."""
    cell_agree, grid_agree, grid_strict, groups = [], [], [], []
    seeds_seq = seeds_fix = runs_seq = runs_fix = 0.0
    fixed_truth = np.ones(reps, dtype=bool)
    seq_truth = np.ones(reps, dtype=bool)
    for name, count, wds, lrp, n_fixed, effects in grid_cells(pattern):
        d = design_for(n_fixed, spending, futility)
        arms = len(wds) * max(1, len(lrp))
        ok_all = np.ones(reps, dtype=bool)
        ok_strict = np.ones(reps, dtype=bool)
        per_cell = []
        stop_dist = np.zeros(len(d.looks))
        seq_decisive = fix_decisive = group_seeds = 0.0
        for eff in effects:
            out = sq.simulate(d, eff, reps, rng, lrp)
            s, f = out["sequential"], out["fixed"]
            null = max(eff) == min(eff)
            agree = s["decisive"] == f["decisive"]
            if not null:
                agree &= s["best"] == f["best"]
            strict = agree & (s["significant"] == f["significant"]).all(axis=1)
            ok_all &= agree
            ok_strict &= strict
            per_cell.append(float(agree.mean()))
            seeds_seq += float(s["seeds"].mean())
            seeds_fix += n_fixed
            runs_seq += float(s["seeds"].mean()) * arms
            runs_fix += n_fixed * arms
            stop_dist += np.bincount(s["stop"], minlength=len(d.looks)) / reps
            seq_decisive += float(s["decisive"].mean())
            fix_decisive += float(f["decisive"].mean())
            # The paper's verdicts: 33% optimal in every Phase 2 and Phase 5 cell (the planted
            # optimum, argmin of eff); INT4 decisive at 33% from 50M, noise-dominated below.
            opt = int(np.argmin(eff))
            for r, truth in ((f, fixed_truth), (s, seq_truth)):
                if "int4" in name:
                    truth &= r["decisive"] == (not null)
                if not null:
                    truth &= r["best"] == opt
            group_seeds += float(s["seeds"].mean())
        cell_agree.extend(per_cell)
        grid_agree.append(ok_all)
        grid_strict.append(ok_strict)
        groups.append(
            {
                "group": name,
                "cells": count,
                "arms": arms,
                "looks": list(d.looks),
                "agreement": float(np.mean(per_cell)),
                "group_agreement_strict": float(ok_strict.mean()),  # every cell of the group, strict
                "stop_at_look": (stop_dist / count).round(4).tolist(),
                "decisive_seq": seq_decisive / count,
                "decisive_fixed": fix_decisive / count,
                "mean_seeds": group_seeds / count,
                "seeds_ratio": group_seeds / count / n_fixed,
            }
        )
    return {
        "pattern": pattern,
        "spending": spending,
        "futility": futility,
        "reps": reps,
        "cell_agreement_mean": float(np.mean(cell_agree)),
        "cell_agreement_min": float(np.min(cell_agree)),
        "grid_agreement": float(np.logical_and.reduce(grid_agree).mean()),
        "grid_agreement_strict": float(np.logical_and.reduce(grid_strict).mean()),
        "grid_fixed_reaches_paper": float(fixed_truth.mean()),
        "grid_seq_reaches_paper": float(seq_truth.mean()),
        "seeds_ratio": seeds_seq / seeds_fix,
        "runs_ratio": runs_seq / runs_fix,
        "runs_fixed": runs_fix,
        "runs_expected": runs_seq,
        "groups": groups,
    }


def boundary_rows() -> list[dict]:
    rows = []
    for rule in sq.SPENDING:
        for K in (1, 2, 3):
            b = sq.boundaries(np.arange(1, K + 1) / K, 0.05, rule)
            rows.append(
                {
                    "spending": rule,
                    "K": K,
                    "bounds": [round(float(x), 4) for x in b],
                    "published": PUBLISHED.get((rule, K)),
                }
            )
    for looks in (LOOKS5, LOOKS10):
        for rule in sq.SPENDING:
            d = sq.Design(looks, 0.05, rule)
            rows.append(
                {
                    "spending": rule,
                    "looks": list(looks),
                    "z": [round(float(x), 4) for x in sq.z_boundaries(d, 1)[:, 0]],
                    "t": [round(float(x), 3) for x in sq.t_boundaries(d, 1)[:, 0]],
                }
            )
    return rows


def markdown(res: dict) -> str:
    L = ["# Sequential seeds: simulated operating characteristics", ""]
    L += [
        f"`python benchmarks/sequential_sim.py --reps {res['reps']}` ({res['wall_s']:.0f} s). Effects in units of the",
        "paired-difference sd; alpha = 0.05 two-sided (0.025 per side); looks [3, 5] for 5-seed cells,",
        "[3, 5, 10] for INT4's 10. docs/sequential.md explains the design.",
        "",
    ]
    L += [
        "## Boundaries (z; equally spaced unless looks given)",
        "",
        "| spending | K / looks | z | t (n-1 df) | published |",
        "|---|---|---|---|---|",
    ]
    for r in res["boundaries"]:
        if "K" in r:
            L.append(f"| {r['spending']} | K = {r['K']} | {r['bounds']} | | {r['published'] or ''} |")
        else:
            L.append(f"| {r['spending']} | {r['looks']} | {r['z']} | {r['t']} | |")
    L += [
        "",
        f"## Family-wise false-positive rate under no effect ({res['fwer_reps']} cells each)",
        "",
        "A false claim: a comparison significant although the alternative is not truly worse than the declared",
        "best ('any'), or a decisive verdict although some alternative is not truly worse ('decisive').",
        "MC SE = sqrt(p(1 - p)/R). 'nominal' rows use the z boundaries' nominal levels on the t (no calibration).",
        "",
        "| case | spending | futility | t boundaries | any ± SE | decisive ± SE | fixed: any / decisive | mean seeds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in res["fwer"]:
        L.append(
            f"| {r['case']} | {r['spending']} | {r['futility']} | {r['t_boundaries']} | "
            f"{r['any']:.4f} ± {r['any_se']:.4f} | "
            f"{r['decisive']:.4f} ± {r['decisive_se']:.4f} | {r['fixed_any']:.4f} / {r['fixed_decisive']:.4f} | "
            f"{r['mean_seeds']:.2f} / {r['looks'][-1]} |"
        )
    L += [
        "",
        f"## The paper-shaped grid ({res['grid_reps']} simulated grids of 47 cells, 1,345 runs fixed)",
        "",
        "Agreement: the sequential verdict (regime; best warmdown where the planted effect is not null) equals",
        "the fixed design's on the same table. Strict adds every comparison's significance.",
        "'= paper': 33% optimal in every cell with an effect, INT4 decisive at 50M/100M and noise-dominated below.",
        "",
        "| Phase 2 pattern | spending | futility | cell agreement (mean / min) | grid agreement | strict | "
        "grid = paper: fixed / seq | seeds ratio | runs ratio (expected / 1,345) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in res["grids"]:
        L.append(
            f"| {g['pattern']} | {g['spending']} | {g['futility']} | {g['cell_agreement_mean']:.4f} / "
            f"{g['cell_agreement_min']:.4f} | {g['grid_agreement']:.4f} | {g['grid_agreement_strict']:.4f} | "
            f"{g['grid_fixed_reaches_paper']:.4f} / {g['grid_seq_reaches_paper']:.4f} | {g['seeds_ratio']:.3f} | "
            f"{g['runs_ratio']:.3f} ({g['runs_expected']:.0f}) |"
        )
    L += [
        "",
        "Per cell group (each grid row above, in order):",
        "",
        "| Phase 2 pattern | spending | futility | group | cells | agreement | P(stop at look) | "
        "decisive seq / fixed | seeds ratio |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for g in res["grids"]:
        for c in g["groups"]:
            L.append(
                f"| {g['pattern']} | {g['spending']} | {g['futility']} | {c['group']} | {c['cells']} | "
                f"{c['agreement']:.4f} | {c['stop_at_look']} | {c['decisive_seq']:.3f} / {c['decisive_fixed']:.3f} | "
                f"{c['seeds_ratio']:.3f} |"
            )
    return "\n".join(L) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=2000, help="simulated grids (FWER cases use 25x this many cells)")
    ap.add_argument("--seed", type=int, default=20261204)
    args = ap.parse_args()
    t0 = time.time()
    rng = np.random.default_rng([args.seed, 0])  # one stream per section: a section's rows do not move the other's
    res = {"reps": args.reps, "seed": args.seed, "boundaries": boundary_rows()}
    res["fwer_reps"] = 25 * args.reps
    res["fwer"] = fwer(res["fwer_reps"], rng)
    for r in res["fwer"]:
        print(
            f"FWER {r['case']:55s} {r['spending']:15s} fut {r['futility']:.1f} {r['t_boundaries']:10s}: "
            f"any {r['any']:.4f} ± {r['any_se']:.4f}, decisive {r['decisive']:.4f} ± {r['decisive_se']:.4f} "
            f"(fixed {r['fixed_any']:.4f} / {r['fixed_decisive']:.4f}), seeds {r['mean_seeds']:.2f}/{r['looks'][-1]}"
        )
    res["grid_reps"] = args.reps
    rng = np.random.default_rng([args.seed, 1])
    res["grids"] = []
    for pattern in ("decisive", "borderline", "strong"):
        for spending in sq.SPENDING:
            for futility in (0.0, 0.1, 0.2):
                g = grid(pattern, spending, futility, args.reps, rng)
                res["grids"].append(g)
                print(
                    f"grid {pattern:10s} {spending:15s} fut {futility:.1f}: "
                    f"cell agreement {g['cell_agreement_mean']:.4f} (min {g['cell_agreement_min']:.4f}), "
                    f"grid {g['grid_agreement']:.4f}, seeds x{g['seeds_ratio']:.3f},"
                    f" runs x{g['runs_ratio']:.3f} ({g['runs_expected']:.0f} of {g['runs_fixed']:.0f})"
                )
    res["wall_s"] = time.time() - t0
    write_json(RESULTS / "sequential-sim.json", res)
    with atomic_path(RESULTS / "sequential-sim.md") as tmp:
        tmp.write_text(markdown(res))
    print(f"wrote {RESULTS / 'sequential-sim.md'} ({res['wall_s']:.0f} s)")


if __name__ == "__main__":
    main()
