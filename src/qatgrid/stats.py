"""The study's analyses, as pure functions of the runs table (and probe table).

Definitions used throughout:
- A *cell* is (phase, bits, size, optimizer, schedule, length_mult).
- Within a cell each warmdown fraction is scored at its own best LR multiplier
  (lowest mean final validation loss over seeds), as an LR sweep intends.
- Diverged runs are excluded from means and pairs (they are counted separately).

Paired test (`paired_tests`): for the cell's best warmdown b and each
alternative a, the per-seed differences d_s = L(a, s) - L(b, s) over seeds run
at both give z = mean(d) / (sd(d) / sqrt(n)) (sd with n-1 denominator; this is
the paired t statistic, scipy.stats.ttest_rel). p is two-sided from Student's
t with n-1 degrees of freedom; within each cell the alternatives' p values are
Holm-adjusted. z > 0 means the best warmdown wins.

Paired interval (`loss_by_warmdown`): each warmdown's difference to its cell's
best warmdown, d_s as above over the seeds run at both, with the 1 - alpha
t interval mean(d) +/- t(1 - alpha/2, n-1) sd(d)/sqrt(n) (scipy.stats.ttest_rel's
confidence_interval); it needs two pairs.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats as sps

from .runs import BASE_ARM, first_phase

CELL = ["phase", "bits", "size", "optimizer", "schedule", "length_mult"]


def completed(df: pd.DataFrame) -> pd.DataFrame:
    return df[~df["diverged"].astype(bool) & df["final_val_loss"].notna()]


def best_lr_per_warmdown(df: pd.DataFrame) -> pd.DataFrame:
    """One row per (cell, warmdown): the LR multiplier with the lowest mean loss, and that mean."""
    means = (
        completed(df)
        .groupby(CELL + ["n_params", "warmdown_frac", "lr_mult"], as_index=False)
        .agg(mean_loss=("final_val_loss", "mean"), sd_loss=("final_val_loss", "std"), n_seeds=("seed", "nunique"))
    )
    idx = means.groupby(CELL + ["warmdown_frac"])["mean_loss"].idxmin()
    return means.loc[idx].reset_index(drop=True)


def optimal_warmdown(df: pd.DataFrame) -> pd.DataFrame:
    per_wd = best_lr_per_warmdown(df)
    idx = per_wd.groupby(CELL)["mean_loss"].idxmin()
    best = per_wd.loc[idx].rename(
        columns={"warmdown_frac": "best_warmdown", "lr_mult": "best_lr_mult", "mean_loss": "best_mean_loss"}
    )
    best["n_warmdowns"] = (
        per_wd.groupby(CELL)["warmdown_frac"].nunique().reindex(pd.MultiIndex.from_frame(best[CELL])).to_numpy()
    )
    return best.drop(columns=["sd_loss"]).sort_values(CELL).reset_index(drop=True)


def paired_z(diffs: np.ndarray) -> tuple[float, float]:
    """(z, two-sided p) of the paired differences; NaN when fewer than two pairs."""
    diffs = np.asarray(diffs, dtype=float)
    n = diffs.size
    if n < 2:
        return float("nan"), float("nan")
    sd = diffs.std(ddof=1)
    mean = diffs.mean()
    if sd == 0:
        return (float("nan"), float("nan")) if mean == 0 else (float(np.sign(mean) * np.inf), 0.0)
    z = mean / (sd / np.sqrt(n))
    return float(z), float(2 * sps.t.sf(abs(z), df=n - 1))


def paired_interval(diffs: np.ndarray, alpha: float = 0.05) -> tuple[float, float, float]:
    """(mean, low, high) of the paired differences: the 1 - alpha t interval of their mean over n - 1
    df, as scipy.stats.ttest_rel(...).confidence_interval gives it; NaN bounds below two pairs."""
    d = np.asarray(diffs, dtype=float)
    if d.size == 0:
        return float("nan"), float("nan"), float("nan")
    mean = float(d.mean())
    if d.size < 2:
        return mean, float("nan"), float("nan")
    half = float(sps.t.ppf(1 - alpha / 2, d.size - 1) * d.std(ddof=1) / np.sqrt(d.size))
    return mean, mean - half, mean + half


def untested_reason(n_pairs: int, mean_diff: float, sd_diff: float) -> str | None:
    """Why a paired test has no z (`paired_z` returns NaN), or None when it has one."""
    if n_pairs == 0:
        return "no seed run at both warmdowns"
    if n_pairs == 1:
        return "1 seed: no paired test"
    if sd_diff == 0 and mean_diff == 0:
        return "identical losses on every seed: no test"
    return None


def critical_z(n_pairs: int, n_alternatives: int, alpha: float = 0.05) -> float:
    """The |z| from which a cell's alternative is significant after Holm: the two-sided paired t
    critical value at alpha / k over n - 1 df, k the cell's alternatives (Holm's first step; with
    equal seeds per alternative every z at or above it is significant, and with k = 1 exactly those
    are). NaN below two pairs."""
    if n_pairs < 2:
        return float("nan")
    return float(sps.t.ppf(1 - alpha / (2 * max(1, n_alternatives)), n_pairs - 1))


def holm(pvalues: np.ndarray) -> np.ndarray:
    """Holm step-down adjusted p values, NaNs passed through: sorted ascending, the i-th (from 0) of m
    is max over j <= i of (m - j) p_(j), capped at 1; the same arithmetic as statsmodels'
    multipletests(method='holm') (tested equal), which also runs a full garbage collection per call."""
    p = np.asarray(pvalues, dtype=float)
    out = np.full_like(p, np.nan)
    ok = ~np.isnan(p)
    if ok.any():
        q = p[ok]
        order = np.argsort(q)
        adjusted = np.minimum(np.maximum.accumulate(q[order] * np.arange(q.size, 0, -1)), 1)
        corrected = np.empty_like(q)
        corrected[order] = adjusted
        out[ok] = corrected
    return out


def paired_tests(df: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """Each alternative warmdown against the cell's best, paired by seed (see module doc)."""
    done = completed(df)
    per_wd = best_lr_per_warmdown(df)
    best = optimal_warmdown(df)
    runs_by_cell, levels_by_cell = dict(iter(done.groupby(CELL))), dict(iter(per_wd.groupby(CELL)))
    rows = []
    for _, cell in best.iterrows():
        key = tuple(cell[c] for c in CELL)
        in_cell, cands = runs_by_cell[key], levels_by_cell[key]
        ref = _seed_losses(in_cell, cell["best_warmdown"], cell["best_lr_mult"])
        cell_rows = []
        for _, alt in cands.iterrows():
            if alt["warmdown_frac"] == cell["best_warmdown"]:
                continue
            other = _seed_losses(in_cell, alt["warmdown_frac"], alt["lr_mult"])
            seeds = ref.index.intersection(other.index)
            d = (other.loc[seeds] - ref.loc[seeds]).to_numpy()
            z, p = paired_z(d)
            cell_rows.append(
                {
                    **dict(zip(CELL, key)),
                    "n_params": cell["n_params"],
                    "best_warmdown": cell["best_warmdown"],
                    "alt_warmdown": alt["warmdown_frac"],
                    "n_pairs": int(d.size),
                    "mean_diff": float(d.mean()) if d.size else np.nan,
                    "sd_diff": float(d.std(ddof=1)) if d.size > 1 else np.nan,
                    "z": z,
                    "p": p,
                    "seeds_best_wins": int((d > 0).sum()),
                }
            )
        if cell_rows:
            adj = holm(np.array([r["p"] for r in cell_rows]))
            for r, pa in zip(cell_rows, adj):
                r["p_holm"] = pa
                r["significant"] = bool(pa < alpha)
            rows.extend(cell_rows)
    cols = CELL + [
        "n_params",
        "best_warmdown",
        "alt_warmdown",
        "n_pairs",
        "mean_diff",
        "sd_diff",
        "z",
        "p",
        "p_holm",
        "significant",
        "seeds_best_wins",
    ]
    return pd.DataFrame(rows, columns=cols)


def _seed_losses(runs: pd.DataFrame, warmdown: float, lr_mult: float) -> pd.Series:
    """Final loss per init seed at one (warmdown, LR); a seed's data orders are averaged first."""
    r = runs[(runs["warmdown_frac"] == warmdown) & (runs["lr_mult"] == lr_mult)]
    return r.groupby("seed")["final_val_loss"].mean()


def loss_by_warmdown(df: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """`best_lr_per_warmdown` plus each level's paired difference to its cell's best level (lowest
    mean): `best_warmdown`, `n_pairs` (seeds run at both), `diff_mean` and the 1 - alpha t interval
    `diff_ci_low`, `diff_ci_high` of loss(level) - loss(best) over those seeds (module doc). The best
    level's difference is 0 on every seed (interval [0, 0]); an interval needs two pairs (else NaN)."""
    per_wd = best_lr_per_warmdown(df)
    runs_by_cell = dict(iter(completed(df).groupby(CELL)))
    cols = {k: pd.Series(np.nan, index=per_wd.index, dtype=float) for k in ("diff_mean", "diff_ci_low", "diff_ci_high")}
    best_wd = pd.Series(np.nan, index=per_wd.index, dtype=float)
    n_pairs = pd.Series(0, index=per_wd.index, dtype=int)
    for key, levels in per_wd.groupby(CELL, sort=False):
        cell = runs_by_cell[key]
        best = levels.loc[levels["mean_loss"].idxmin()]
        ref = _seed_losses(cell, best["warmdown_frac"], best["lr_mult"])
        for i, level in levels.iterrows():
            other = _seed_losses(cell, level["warmdown_frac"], level["lr_mult"])
            seeds = ref.index.intersection(other.index)
            d = other.loc[seeds].to_numpy() - ref.loc[seeds].to_numpy()
            cols["diff_mean"][i], cols["diff_ci_low"][i], cols["diff_ci_high"][i] = paired_interval(d, alpha)
            best_wd[i], n_pairs[i] = best["warmdown_frac"], d.size
    return per_wd.assign(best_warmdown=best_wd, n_pairs=n_pairs, **cols)


def regimes(tests: pd.DataFrame) -> pd.DataFrame:
    """Per cell: 'decisive' when the best warmdown beats every alternative significantly, else 'noise-dominated'."""
    g = tests.groupby(CELL + ["n_params", "best_warmdown"], as_index=False).agg(
        min_abs_z=("z", lambda z: float(np.min(np.abs(z)))), all_significant=("significant", "all")
    )
    g["regime"] = np.where(g["all_significant"], "decisive", "noise-dominated")
    return g


def robustness_curves(df: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The curves the robustness figure draws: per arm cell of `robustness`, the arm's levels
    (`curve` 'arm') and the base-arm cell it is compared with (`curve` 'base': phase `base_phase`,
    same bits and size) on the arm's levels only, each as `loss_by_warmdown` relative to its own best
    level. The CELL columns name the arm cell on both curves."""
    done = completed(df)
    rows = []
    for arm in robustness(df).itertuples(index=False):
        key = pd.Series([getattr(arm, c) for c in CELL], index=CELL)
        curve = loss_by_warmdown(done[(done[CELL] == key).all(axis=1)], alpha)
        rows.append(curve.assign(curve="arm", base_phase=arm.base_phase))
        if isinstance(arm.base_phase, str):
            base_key = key.copy()
            base_key["phase"] = arm.base_phase
            for k, v in BASE_ARM.items():
                base_key[k] = v
            base = done[(done[CELL] == base_key).all(axis=1) & done["warmdown_frac"].isin(curve["warmdown_frac"])]
            base = loss_by_warmdown(base, alpha)
            rows.append(base.assign(**{c: key[c] for c in CELL}, curve="base", base_phase=arm.base_phase))
    cols = CELL + ["curve", "base_phase", "n_params", "warmdown_frac", "lr_mult", "mean_loss", "sd_loss", "n_seeds"]
    cols += ["best_warmdown", "n_pairs", "diff_mean", "diff_ci_low", "diff_ci_high"]
    return pd.concat(rows, ignore_index=True).reindex(columns=cols) if rows else pd.DataFrame(columns=cols)


def base_arm_mask(df: pd.DataFrame) -> np.ndarray:
    """True for the rows of the base arm (qatgrid.runs.BASE_ARM: Muon, linear warmdown, 1x length)."""
    mask = np.ones(len(df), dtype=bool)
    for k, v in BASE_ARM.items():
        mask &= (df[k] == v).to_numpy()
    return mask


def base_arm(df: pd.DataFrame) -> pd.DataFrame:
    return df[base_arm_mask(df)]


def quant_penalty(df: pd.DataFrame, bits: int) -> pd.DataFrame:
    """Per (phase, size, seed): loss of the `bits` arm minus the FP16 arm, each at its cell's
    optimal (warmdown, LR), paired by seed. Base arm (Muon, linear, 1x) only."""
    df = base_arm(completed(df))
    best = optimal_warmdown(df)
    rows = []
    for (phase, size), cells in best.groupby(["phase", "size"]):
        by_bits = cells.set_index("bits")
        if 16 not in by_bits.index or bits not in by_bits.index:
            continue

        def losses(b):
            c = by_bits.loc[b]
            r = df[
                (df["phase"] == phase)
                & (df["size"] == size)
                & (df["bits"] == b)
                & (df["warmdown_frac"] == c["best_warmdown"])
                & (df["lr_mult"] == c["best_lr_mult"])
            ]
            # Pairs share the init seed; where a data-order axis ran, its orders are averaged first.
            return r.groupby("seed")["final_val_loss"].mean()

        q, fp = losses(bits), losses(16)
        for seed in q.index.intersection(fp.index):
            rows.append(
                {
                    "phase": phase,
                    "size": size,
                    "n_params": int(by_bits.loc[bits, "n_params"]),
                    "bits": bits,
                    "seed": int(seed),
                    "penalty": float(q[seed] - fp[seed]),
                }
            )
    return pd.DataFrame(rows, columns=["phase", "size", "n_params", "bits", "seed", "penalty"])


def fit_penalty_law(penalty: pd.DataFrame, heldout_sizes: list[str], alpha: float = 0.05) -> pd.DataFrame:
    """OLS of penalty on log10(n_params) over per-seed points of the non-held-out sizes;
    95% prediction interval for a new observation at every size; a held-out size is
    covered when its mean penalty over seeds lies inside that interval."""
    import statsmodels.api as sm

    fit_rows = penalty[~penalty["size"].isin(heldout_sizes)]
    if fit_rows["size"].nunique() < 2 or len(fit_rows) < 3:
        raise ValueError(
            f"the penalty law needs >= 2 fit sizes and >= 3 points, got "
            f"{fit_rows['size'].nunique()} sizes / {len(fit_rows)} points"
        )
    X = sm.add_constant(np.log10(fit_rows["n_params"].to_numpy(dtype=float)))
    model = sm.OLS(fit_rows["penalty"].to_numpy(dtype=float), X).fit()
    per_size = penalty.groupby("size", as_index=False).agg(
        n_params=("n_params", "first"), mean_penalty=("penalty", "mean"), n_seeds=("seed", "nunique")
    )
    pred = model.get_prediction(
        sm.add_constant(np.log10(per_size["n_params"].to_numpy(dtype=float)), has_constant="add")
    ).summary_frame(alpha=alpha)
    out = per_size.assign(
        predicted=pred["mean"].to_numpy(),
        pi_low=pred["obs_ci_lower"].to_numpy(),
        pi_high=pred["obs_ci_upper"].to_numpy(),
        heldout=per_size["size"].isin(heldout_sizes),
    )
    out["covered"] = (out["mean_penalty"] >= out["pi_low"]) & (out["mean_penalty"] <= out["pi_high"])
    out["intercept"], out["slope_per_decade"] = model.params[0], model.params[1]
    out["r_squared"], out["n_fit_points"] = model.rsquared, int(model.nobs)
    return out.sort_values("n_params").reset_index(drop=True)


def probe_ratio(probes: pd.DataFrame, grid_bits: int, alpha: float = 0.05) -> pd.DataFrame:
    """Per (phase, size): mean over matched pairs of distance(QAT at grid_bits) / distance(FP16),
    pairs matched on every other axis; t confidence interval across pairs."""
    keys = ["phase", "size", "warmdown_frac", "lr_mult", "seed", "optimizer", "schedule", "length_mult"]
    q = probes[probes["bits"] == grid_bits].set_index(keys)["mean_distance"]
    fp = probes[probes["bits"] == 16].set_index(keys)["mean_distance"]
    ratio = (q / fp).dropna().rename("ratio").reset_index()
    rows = []
    for (phase, size), g in ratio.groupby(["phase", "size"]):
        r = g["ratio"].to_numpy()
        n, mean = r.size, float(r.mean())
        half = float(sps.t.ppf(1 - alpha / 2, n - 1) * r.std(ddof=1) / np.sqrt(n)) if n > 1 else float("nan")
        rows.append(
            {
                "phase": phase,
                "size": size,
                "grid_bits": grid_bits,
                "n_pairs": n,
                "ratio": mean,
                "ci_low": mean - half,
                "ci_high": mean + half,
                "qat_distance": float(q.xs((phase, size), level=["phase", "size"]).mean()),
                "fp16_distance": float(fp.xs((phase, size), level=["phase", "size"]).mean()),
            }
        )
    return pd.DataFrame(
        rows,
        columns=[
            "phase",
            "size",
            "grid_bits",
            "n_pairs",
            "ratio",
            "ci_low",
            "ci_high",
            "qat_distance",
            "fp16_distance",
        ],
    )


def first_phase_rows(df: pd.DataFrame) -> pd.DataFrame:
    """The rows of each (bits, size) cell's first phase (qatgrid.runs.first_phase): a cell run in
    several base-arm phases is drawn and mapped from its first phase only."""
    return df[df["phase"] == df.groupby(["bits", "size"])["phase"].transform(first_phase)]


def robustness(df: pd.DataFrame) -> pd.DataFrame:
    """Phase 5 arms (optimizer, schedule or length differ from the base arm): is the optimal
    warmdown of each (bits, size) the same as the base arm's? The base optimum is taken over
    the warmdowns the arm also ran, from the base-arm cell at the same (bits, size), Phase 2 first."""
    per_wd = best_lr_per_warmdown(df)
    best = optimal_warmdown(df)
    is_base = base_arm_mask(best)
    base_wd = base_arm(per_wd)
    arms = best[~is_base].copy()
    arms["arm"] = [f"{r.optimizer}/{r.schedule}/x{r.length_mult:g}" for r in arms.itertuples()]
    base_phase, base_best = [], []
    for r in arms.itertuples():
        arm_levels = per_wd[(per_wd[CELL] == pd.Series([getattr(r, c) for c in CELL], index=CELL)).all(axis=1)]
        cand = base_wd[
            (base_wd["bits"] == r.bits)
            & (base_wd["size"] == r.size)
            & base_wd["warmdown_frac"].isin(arm_levels["warmdown_frac"])
        ]
        cand = cand[cand["phase"] == first_phase(cand["phase"])] if len(cand) else cand
        base_phase.append(cand["phase"].iloc[0] if len(cand) else None)
        base_best.append(cand.loc[cand["mean_loss"].idxmin(), "warmdown_frac"] if len(cand) else np.nan)
    arms["base_phase"], arms["base_best_warmdown"] = base_phase, base_best
    arms["unchanged"] = arms["best_warmdown"] == arms["base_best_warmdown"]
    cols = CELL + ["arm", "best_warmdown", "base_phase", "base_best_warmdown", "unchanged", "best_mean_loss"]
    return arms.reindex(columns=cols).reset_index(drop=True)


BOUNDARY_REGIMES = (
    "decisive at the expected optimum",
    "decisive elsewhere",
    "noise-dominated",
    "one warmdown only",
    "not run",
)


def boundary_map(best: pd.DataFrame, regime_table: pd.DataFrame, expected_warmdown: float = 0.33) -> pd.DataFrame:
    """The boundary map's table: one row per (bits, size) of the base arm's bits × sizes, with the
    optimum, the smallest |z| against any alternative and the regime: decisive at
    `expected_warmdown` (the paper's 33%), decisive at another optimum, noise-dominated, a cell
    with one warmdown level (nothing to test), or not run. A cell run in several base-arm phases
    is taken from its first phase (Phase 2 before Phase 5)."""
    from .runs import bits_label
    from .sizes import size_to_number

    best = base_arm(best)
    best = first_phase_rows(best)
    reg = base_arm(regime_table).set_index(["phase", "bits", "size"])
    rows = []
    bits_all = sorted(best["bits"].unique(), reverse=True)
    sizes_all = sorted(best["size"].unique(), key=size_to_number)
    by_cell = best.set_index(["bits", "size"])
    for b in bits_all:
        for s in sizes_all:
            row = {
                "bits": int(b),
                "bits_label": bits_label(b),
                "size": s,
                "n_params": int(size_to_number(s)),
                "phase": None,
                "best_warmdown": np.nan,
                "n_warmdowns": 0,
                "min_abs_z": np.nan,
                "regime": "not run",
            }
            if (b, s) in by_cell.index:
                c = by_cell.loc[(b, s)]
                row.update(
                    phase=c["phase"],
                    best_warmdown=float(c["best_warmdown"]),
                    n_warmdowns=int(c["n_warmdowns"]),
                    regime="one warmdown only",
                )
                if (c["phase"], b, s) in reg.index:
                    r = reg.loc[(c["phase"], b, s)]
                    row["min_abs_z"] = float(r["min_abs_z"])
                    if r["regime"] != "decisive":
                        row["regime"] = "noise-dominated"
                    elif np.isclose(row["best_warmdown"], expected_warmdown):
                        row["regime"] = "decisive at the expected optimum"
                    else:
                        row["regime"] = "decisive elsewhere"
            rows.append(row)
    out = pd.DataFrame(
        rows,
        columns=[
            "bits",
            "bits_label",
            "size",
            "n_params",
            "phase",
            "best_warmdown",
            "n_warmdowns",
            "min_abs_z",
            "regime",
        ],
    )
    out["expected_warmdown"] = expected_warmdown
    return out


VARIANCE_CELL = CELL + ["warmdown_frac", "lr_mult"]


def variance_components(df: pd.DataFrame) -> pd.DataFrame:
    """Init-seed and data-order variance of the final loss, per cell run on both axes.

    A crossed two-way random-effects design, y_ij = mu + a_i + b_j + e_ij (init seed i,
    data order j, one run each), estimated by the method of moments (ANOVA):
        MS_init = J sum_i (ybar_i. - ybar)^2 / (I-1),  MS_data = I sum_j (ybar_.j - ybar)^2 / (J-1),
        MS_res  = sum_ij (y_ij - ybar_i. - ybar_.j + ybar)^2 / ((I-1)(J-1)),
        var_init = (MS_init - MS_res) / J,  var_data = (MS_data - MS_res) / I,  var_residual = MS_res.
    The estimates are unbiased and can fall below zero (reported as they are); the residual also
    holds any init x data interaction, which one run per pair cannot separate. Only the complete
    rectangle is used: init seeds lacking any of the cell's data orders are dropped.
    """
    done = completed(df)
    rows = []
    for key, cell in done.groupby(VARIANCE_CELL):
        y = cell.pivot_table(index="seed", columns="data_seed", values="final_val_loss", aggfunc="mean")
        y = y.dropna(axis=0, how="any")
        n_init, n_data = y.shape
        if n_init < 2 or n_data < 2:
            continue
        v = y.to_numpy()
        grand, row_m, col_m = v.mean(), v.mean(axis=1, keepdims=True), v.mean(axis=0, keepdims=True)
        ms_init = n_data * ((row_m - grand) ** 2).sum() / (n_init - 1)
        ms_data = n_init * ((col_m - grand) ** 2).sum() / (n_data - 1)
        ms_res = ((v - row_m - col_m + grand) ** 2).sum() / ((n_init - 1) * (n_data - 1))
        rows.append(
            {
                **dict(zip(VARIANCE_CELL, key)),
                "n_params": cell["n_params"].iloc[0],
                "n_init_seeds": n_init,
                "n_data_seeds": n_data,
                "mean_loss": float(grand),
                "var_init": float((ms_init - ms_res) / n_data),
                "var_data": float((ms_data - ms_res) / n_init),
                "var_residual": float(ms_res),
                "ms_init": float(ms_init),
                "ms_data": float(ms_data),
            }
        )
    cols = VARIANCE_CELL + [
        "n_params",
        "n_init_seeds",
        "n_data_seeds",
        "mean_loss",
        "var_init",
        "var_data",
        "var_residual",
        "ms_init",
        "ms_data",
    ]
    return pd.DataFrame(rows, columns=cols)
