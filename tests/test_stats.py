import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
from scipy import stats as sps
from synthetic import runs_table

from qatgrid import stats


def test_paired_z_equals_scipy_ttest_rel():
    rng = np.random.default_rng(1)
    a, b = rng.normal(3.0, 0.1, 10), rng.normal(3.02, 0.1, 10)
    z, p = stats.paired_z(b - a)
    ref = sps.ttest_rel(b, a)
    assert z == pytest.approx(ref.statistic, rel=1e-12)
    assert p == pytest.approx(ref.pvalue, rel=1e-10)


def test_paired_z_edge_cases():
    assert np.isnan(stats.paired_z(np.array([0.1]))[0])
    assert stats.paired_z(np.array([0.5, 0.5, 0.5])) == (np.inf, 0.0)
    assert np.isnan(stats.paired_z(np.zeros(4))[0])


def test_holm_hand_computed():
    # sorted p: 0.01, 0.02, 0.04 -> 3*0.01, max(0.03, 2*0.02), max(0.04, 1*0.04)
    np.testing.assert_allclose(stats.holm(np.array([0.04, 0.01, 0.02])), [0.04, 0.03, 0.04])
    out = stats.holm(np.array([np.nan, 0.2]))
    assert np.isnan(out[0]) and out[1] == pytest.approx(0.2)


def test_holm_equals_statsmodels_bit_for_bit():
    from statsmodels.stats.multitest import multipletests

    rng = np.random.default_rng(3)
    for k in (1, 2, 3, 5, 8):
        for _ in range(4):
            p = rng.uniform(0, 1, k) ** 3
            p[rng.uniform(size=k) < 0.2] = p[0]  # ties
            assert np.array_equal(stats.holm(p), multipletests(p, method="holm")[1])


def test_planted_effect_found_and_noise_called_noise():
    cells = {
        (4, "100M"): {0.2: 3.10, 0.33: 3.00, 0.5: 3.08},  # wd33 wins by 0.08-0.10 nats
        (4, "3M"): {0.2: 4.0, 0.33: 4.0, 0.5: 4.0},
    }  # no effect at all
    df = runs_table(cells, seeds=10, noise=0.01)
    best = stats.optimal_warmdown(df).set_index("size")
    assert best.loc["100M", "best_warmdown"] == 0.33
    tests = stats.paired_tests(df)
    big = tests[tests["size"] == "100M"]
    assert set(big["alt_warmdown"]) == {0.2, 0.5}
    assert (big["z"] > 10).all() and big["significant"].all() and (big["seeds_best_wins"] == 10).all()
    reg = stats.regimes(tests).set_index("size")["regime"]
    assert reg["100M"] == "decisive" and reg["3M"] == "noise-dominated"
    assert not tests[tests["size"] == "3M"]["significant"].any()


def test_diverged_runs_are_excluded():
    df = runs_table({(6, "15M"): {0.2: 3.2, 0.33: 3.1, 0.5: 3.3}}, seeds=3)
    df.loc[(df["warmdown_frac"] == 0.2), ["final_val_loss", "diverged"]] = [np.nan, True]
    best = stats.optimal_warmdown(df)
    assert best["best_warmdown"].item() == 0.33 and best["n_warmdowns"].item() == 2


def test_best_lr_is_chosen_per_warmdown():
    df = runs_table({(16, "15M"): {0.2: 3.2, 0.33: 3.1, 0.5: 3.3}}, seeds=3)
    worse = df.assign(lr_mult=2.0, final_val_loss=df["final_val_loss"] + 0.5)
    per_wd = stats.best_lr_per_warmdown(pd.concat([df, worse]))
    assert (per_wd["lr_mult"] == 1.0).all() and len(per_wd) == 3


def _penalty_table(sizes, slope, intercept, noise, seeds=5, rng_seed=0):
    rng = np.random.default_rng(rng_seed)
    rows = []
    for size, n in sizes.items():
        for s in range(seeds):
            rows.append(
                {
                    "phase": "phase2",
                    "size": size,
                    "n_params": n,
                    "bits": 6,
                    "seed": s,
                    "penalty": intercept + slope * np.log10(n) + rng.normal(0, noise),
                }
            )
    return pd.DataFrame(rows)


def test_penalty_law_matches_statsmodels_and_covers_heldout():
    sizes = {"15M": 15e6, "30M": 30e6, "50M": 50e6, "100M": 100e6, "5M": 5e6, "350M": 350e6}
    pen = _penalty_table(sizes, slope=-0.02, intercept=0.2, noise=0.002)
    fit = stats.fit_penalty_law(pen, ["5M", "350M"]).set_index("size")
    train = pen[~pen["size"].isin(["5M", "350M"])]
    slope, intercept = np.polyfit(np.log10(train["n_params"]), train["penalty"], 1)
    assert fit["slope_per_decade"].iloc[0] == pytest.approx(slope, rel=1e-9)
    assert fit["intercept"].iloc[0] == pytest.approx(intercept, rel=1e-9)
    # prediction interval by hand: yhat +- t * s * sqrt(1 + 1/n + (x0-xbar)^2/Sxx)
    x, y = np.log10(train["n_params"].to_numpy()), train["penalty"].to_numpy()
    n = x.size
    resid = y - (intercept + slope * x)
    s = np.sqrt((resid**2).sum() / (n - 2))
    x0 = np.log10(350e6)
    half = sps.t.ppf(0.975, n - 2) * s * np.sqrt(1 + 1 / n + (x0 - x.mean()) ** 2 / ((x - x.mean()) ** 2).sum())
    assert fit.loc["350M", "pi_high"] - fit.loc["350M", "predicted"] == pytest.approx(half, rel=1e-9)
    assert fit.loc[["5M", "350M"], "heldout"].all() and fit.loc[["5M", "350M"], "covered"].all()
    assert fit["n_fit_points"].iloc[0] == 20


def test_penalty_law_flags_a_heldout_size_off_the_law():
    sizes = {"15M": 15e6, "30M": 30e6, "50M": 50e6, "350M": 350e6}
    pen = _penalty_table(sizes, slope=-0.02, intercept=0.2, noise=0.002)
    pen.loc[pen["size"] == "350M", "penalty"] += 0.1
    fit = stats.fit_penalty_law(pen, ["350M"]).set_index("size")
    assert not fit.loc["350M", "covered"]
    with pytest.raises(ValueError, match="needs >= 2 fit sizes"):
        stats.fit_penalty_law(pen[pen["size"] == "15M"], [])


def test_quant_penalty_pairs_by_seed_at_optimal_cells():
    cells = {(16, "15M"): {0.2: 3.2, 0.33: 3.1, 0.5: 3.3}, (6, "15M"): {0.2: 3.3, 0.33: 3.25, 0.5: 3.4}}
    df = runs_table(cells, seeds=4, noise=0.0)
    pen = stats.quant_penalty(df, 6)
    assert len(pen) == 4
    np.testing.assert_allclose(pen["penalty"], 0.15, atol=1e-12)  # seed offsets cancel in the pairing


def test_probe_ratio_with_t_interval():
    keys = dict(
        phase="phase2", size="15M", warmdown_frac=0.33, lr_mult=1.0, optimizer="muon", schedule="linear", length_mult=1
    )
    fp = [0.24, 0.25, 0.26]
    q = [0.25, 0.26, 0.27]
    probes = pd.DataFrame(
        [{**keys, "bits": 16, "seed": s, "mean_distance": d} for s, d in enumerate(fp)]
        + [{**keys, "bits": 6, "seed": s, "mean_distance": d} for s, d in enumerate(q)]
    )
    out = stats.probe_ratio(probes, 6).iloc[0]
    ratios = np.array(q) / np.array(fp)
    lo, hi = sps.t.interval(0.95, 2, loc=ratios.mean(), scale=sps.sem(ratios))
    assert out["ratio"] == pytest.approx(ratios.mean())
    assert (out["ci_low"], out["ci_high"]) == (pytest.approx(lo), pytest.approx(hi))
    assert out["n_pairs"] == 3


def test_penalty_fit_independent_of_statsmodels_version_api():
    # guards the column names the figure relies on
    X = sm.add_constant(np.array([1.0, 2.0, 3.0]))
    frame = sm.OLS(np.array([1.0, 2.1, 2.9]), X).fit().get_prediction(X).summary_frame(alpha=0.05)
    assert {"mean", "obs_ci_lower", "obs_ci_upper"} <= set(frame.columns)


def test_robustness_flags_a_moved_optimum():
    base = runs_table({(6, "15M"): {0.2: 3.2, 0.33: 3.1, 0.5: 3.3}}, seeds=3)
    adamw = runs_table({(6, "15M"): {0.2: 3.2, 0.33: 3.1, 0.5: 3.3}}, seeds=3, phase="phase5-adamw").assign(
        optimizer="adamw"
    )
    cosine = runs_table({(6, "15M"): {0.2: 3.0, 0.33: 3.1, 0.5: 3.3}}, seeds=3, phase="phase5-cosine").assign(
        schedule="cosine"
    )
    rob = stats.robustness(pd.concat([base, adamw, cosine], ignore_index=True)).set_index("arm")
    assert list(rob.index) == ["adamw/linear/x1", "muon/cosine/x1"]
    assert rob.loc["adamw/linear/x1", "unchanged"] and rob.loc["adamw/linear/x1", "base_phase"] == "phase2"
    assert not rob.loc["muon/cosine/x1", "unchanged"] and rob.loc["muon/cosine/x1", "best_warmdown"] == 0.2


def test_robustness_compares_on_the_warmdowns_the_arm_ran():
    base = runs_table({(6, "15M"): {0.2: 3.0, 0.33: 3.1, 0.5: 3.3}}, seeds=2)
    arm = runs_table({(6, "15M"): {0.33: 3.1, 0.5: 3.3}}, seeds=2, phase="phase5-adamw", warmdowns=(0.33, 0.5)).assign(
        optimizer="adamw"
    )
    rob = stats.robustness(pd.concat([base, arm], ignore_index=True)).iloc[0]
    assert rob["best_warmdown"] == 0.33 and rob["base_best_warmdown"] == 0.33 and rob["unchanged"]


def test_paired_interval_equals_scipy_ttest_rel():
    rng = np.random.default_rng(2)
    a, b = rng.normal(3.0, 0.1, 7), rng.normal(3.05, 0.1, 7)
    for alpha in (0.05, 0.1):
        mean, lo, hi = stats.paired_interval(b - a, alpha)
        ci = sps.ttest_rel(b, a).confidence_interval(1 - alpha)
        assert mean == pytest.approx((b - a).mean()) and (lo, hi) == (pytest.approx(ci.low), pytest.approx(ci.high))
    assert np.isnan(stats.paired_interval(np.array([0.2]))[1]) and stats.paired_interval(np.array([0.2]))[0] == 0.2
    assert all(np.isnan(stats.paired_interval(np.array([]))))


def test_critical_z_is_where_holm_turns_significant():
    """A z at the critical value has p = alpha / k (Holm's first step); with k = 1 that is alpha."""
    for n, k in ((10, 1), (5, 3), (3, 1)):
        z = stats.critical_z(n, k, alpha=0.05)
        assert 2 * sps.t.sf(z, n - 1) == pytest.approx(0.05 / k)
    assert stats.critical_z(10, 1) == pytest.approx(sps.t.ppf(0.975, 9))
    assert np.isnan(stats.critical_z(1, 1))


def test_untested_reason():
    assert stats.untested_reason(1, 0.1, np.nan) == "1 seed: no paired test"
    assert stats.untested_reason(0, np.nan, np.nan) == "no seed run at both warmdowns"
    assert stats.untested_reason(4, 0.0, 0.0) == "identical losses on every seed: no test"
    assert stats.untested_reason(4, 0.1, 0.02) is None


def test_loss_by_warmdown_pairs_each_level_with_the_best_by_seed():
    df = runs_table({(6, "15M"): {0.2: 3.2, 0.33: 3.1, 0.5: 3.3}}, seeds=4)
    df = pd.concat([df, df.assign(lr_mult=2.0, final_val_loss=df["final_val_loss"] + 0.5)], ignore_index=True)
    out = stats.loss_by_warmdown(df).set_index("warmdown_frac")
    # the existing columns are best_lr_per_warmdown's, unchanged
    pd.testing.assert_frame_equal(
        out.reset_index()[list(stats.best_lr_per_warmdown(df).columns)], stats.best_lr_per_warmdown(df)
    )
    assert (out["best_warmdown"] == 0.33).all() and (out["n_pairs"] == 4).all()
    assert out.loc[0.33, ["diff_mean", "diff_ci_low", "diff_ci_high"]].tolist() == [0, 0, 0]
    base = df[df["lr_mult"] == 1.0]

    def losses(wd):
        return base[base["warmdown_frac"] == wd].sort_values("seed")["final_val_loss"].to_numpy()

    for wd in (0.2, 0.5):
        ref = sps.ttest_rel(losses(wd), losses(0.33))
        ci = ref.confidence_interval(0.95)
        assert out.loc[wd, "diff_mean"] == pytest.approx((losses(wd) - losses(0.33)).mean())
        assert (out.loc[wd, "diff_ci_low"], out.loc[wd, "diff_ci_high"]) == (
            pytest.approx(ci.low),
            pytest.approx(ci.high),
        )
    one = stats.loss_by_warmdown(df[df["seed"] == 0]).set_index("warmdown_frac")
    assert (one["n_pairs"] == 1).all() and one.loc[0.2, ["diff_ci_low", "diff_ci_high"]].isna().all()


def test_robustness_curves_compare_each_arm_with_its_base_on_the_arm_levels():
    base = runs_table({(6, "15M"): {0.2: 3.0, 0.33: 3.1, 0.5: 3.3}}, seeds=3)
    arm = runs_table({(6, "15M"): {0.33: 3.1, 0.5: 3.3}}, seeds=3, phase="phase5-adamw", warmdowns=(0.33, 0.5)).assign(
        optimizer="adamw"
    )
    curves = stats.robustness_curves(pd.concat([base, arm], ignore_index=True))
    assert set(curves["optimizer"]) == {"adamw"} and set(curves["base_phase"]) == {"phase2"}
    b = curves[curves["curve"] == "base"].set_index("warmdown_frac")
    assert sorted(b.index) == [0.33, 0.5] and (b["best_warmdown"] == 0.33).all()  # 0.2 is not among the arm's
    expected = stats.loss_by_warmdown(base[base["warmdown_frac"] != 0.2]).set_index("warmdown_frac")
    assert b["diff_ci_high"].to_numpy() == pytest.approx(expected["diff_ci_high"].to_numpy())
    a = curves[curves["curve"] == "arm"]
    assert len(a) == 2 and (a["phase"] == "phase5-adamw").all()
    assert stats.robustness_curves(base).empty
