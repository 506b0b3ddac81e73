"""Init-seed and data-order variance components (stats.variance_components)."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm
import statsmodels.formula.api as smf

from qatgrid import stats


def crossed_table(n_init, n_data, sd_init, sd_data, sd_res, seed=0, mean=3.0, **cell) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    a, b = rng.normal(0, sd_init, n_init), rng.normal(0, sd_data, n_data)
    rows = [
        {
            "phase": "phase6-data",
            "bits": 6,
            "size": "15M",
            "n_params": 15e6,
            "optimizer": "muon",
            "schedule": "linear",
            "length_mult": 1,
            "warmdown_frac": 0.33,
            "lr_mult": 1.0,
            "seed": i,
            "data_seed": j,
            "final_val_loss": mean + a[i] + b[j] + rng.normal(0, sd_res),
            "diverged": False,
            **cell,
        }
        for i in range(n_init)
        for j in range(n_data)
    ]
    return pd.DataFrame(rows)


def test_recovers_planted_variances():
    df = crossed_table(60, 60, sd_init=0.2, sd_data=0.1, sd_res=0.05, seed=1)
    out = stats.variance_components(df).iloc[0]
    assert (out["n_init_seeds"], out["n_data_seeds"]) == (60, 60)
    # sampling sd of each estimate ~ var * sqrt(2 / 59) ~ 18%: generous bounds, still far apart
    assert out["var_init"] == pytest.approx(0.04, rel=0.35)
    assert out["var_data"] == pytest.approx(0.01, rel=0.35)
    assert out["var_residual"] == pytest.approx(0.0025, rel=0.1)


def test_matches_statsmodels_two_way_anova_exactly():
    df = crossed_table(5, 3, sd_init=0.05, sd_data=0.02, sd_res=0.01, seed=2)
    out = stats.variance_components(df).iloc[0]
    aov = sm.stats.anova_lm(smf.ols("final_val_loss ~ C(seed) + C(data_seed)", data=df).fit(), typ=1)
    ms = aov["sum_sq"] / aov["df"]
    ms_init, ms_data, ms_res = ms["C(seed)"], ms["C(data_seed)"], ms["Residual"]
    assert out["ms_init"] == pytest.approx(ms_init, rel=1e-10)
    assert out["ms_data"] == pytest.approx(ms_data, rel=1e-10)
    assert out["var_residual"] == pytest.approx(ms_res, rel=1e-10)
    assert out["var_init"] == pytest.approx((ms_init - ms_res) / 3, rel=1e-10)
    assert out["var_data"] == pytest.approx((ms_data - ms_res) / 5, rel=1e-10)


def test_hand_computed_two_by_two():
    # y = [[1, 2], [3, 5]]: grand 2.75, row means 1.5 / 4, column means 2 / 3.5
    # MS_init = 2 * (1.25^2 + 1.25^2) = 6.25; MS_data = 2 * (0.75^2 + 0.75^2) = 2.25
    # residuals +-0.25 -> MS_res = 0.25; var_init = (6.25 - 0.25) / 2 = 3; var_data = (2.25 - 0.25) / 2 = 1
    df = crossed_table(2, 2, 0, 0, 0)
    df["final_val_loss"] = [1.0, 2.0, 3.0, 5.0]
    out = stats.variance_components(df).iloc[0]
    assert (out["var_init"], out["var_data"], out["var_residual"]) == pytest.approx((3.0, 1.0, 0.25))


def test_cells_without_two_data_orders_are_skipped_and_incomplete_seeds_dropped():
    both = crossed_table(4, 3, 0.1, 0.1, 0.01, seed=3)
    plain = crossed_table(4, 1, 0.1, 0.1, 0.01, seed=4, phase="phase2", data_seed=None)  # off the axis: null
    both = both[~((both["seed"] == 3) & (both["data_seed"] == 2))]  # seed 3 misses one order
    out = stats.variance_components(pd.concat([both, plain]))
    assert list(out["phase"]) == ["phase6-data"]
    assert (out["n_init_seeds"].iloc[0], out["n_data_seeds"].iloc[0]) == (3, 3)


def test_paired_tests_pair_on_the_init_seed_averaging_data_orders():
    df = pd.concat([crossed_table(3, 2, 0.1, 0.1, 0.01, seed=5, warmdown_frac=wd) for wd in (0.33, 0.5)])
    df.loc[df["warmdown_frac"] == 0.5, "final_val_loss"] += 0.02
    tests = stats.paired_tests(df)
    assert len(tests) == 1 and tests["n_pairs"].iloc[0] == 3 and tests["best_warmdown"].iloc[0] == 0.33


def test_off_the_data_axis_runs_pair_on_the_init_seed():
    """Runs off the data-order axis record no data seed (they share the baseline's order)."""
    df = pd.concat([crossed_table(4, 1, 0.1, 0, 0.01, seed=8, warmdown_frac=wd, data_seed=None) for wd in (0.33, 0.5)])
    df.loc[df["warmdown_frac"] == 0.5, "final_val_loss"] += 0.02
    tests = stats.paired_tests(df)
    assert len(tests) == 1 and tests["n_pairs"].iloc[0] == 4 and tests["best_warmdown"].iloc[0] == 0.33
    assert stats.variance_components(df).empty


def test_penalty_pairs_on_the_init_seed_averaging_data_orders():
    q = crossed_table(3, 2, 0.1, 0.1, 0.01, seed=6)
    fp = crossed_table(3, 2, 0.1, 0.1, 0.01, seed=7, bits=16)
    pen = stats.quant_penalty(pd.concat([q, fp]), 6)
    assert list(pen["seed"]) == [0, 1, 2]
    expected = q.groupby("seed")["final_val_loss"].mean() - fp.groupby("seed")["final_val_loss"].mean()
    np.testing.assert_allclose(pen["penalty"], expected.to_numpy(), rtol=1e-12)
