"""Sequential seeds: boundaries against published values and independent integration, the design's
validation, the decision mirroring qatgrid.stats, and error rates by simulation."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats as sps

from qatgrid import sequential as sq
from qatgrid import stats


def equal(k):
    return np.arange(1, k + 1) / k


# ------------------------------------------------------------------ boundaries


def test_obrien_fleming_bounds_reproduce_published_values():
    # Lan-DeMets O'Brien-Fleming, symmetric two-sided, 0.025 per side, equally spaced
    # (gsDesign test.type=2 / ldbounds sides=2).
    np.testing.assert_allclose(sq.boundaries(equal(2), 0.05, "obrien-fleming"), [2.9626, 1.9686], atol=1e-3)
    np.testing.assert_allclose(sq.boundaries(equal(3), 0.05, "obrien-fleming"), [3.7103, 2.5114, 1.9930], atol=1e-3)


@pytest.mark.parametrize("rule", sq.SPENDING)
def test_one_look_is_the_fixed_two_sided_test(rule):
    assert sq.boundaries([1.0], 0.05, rule)[0] == pytest.approx(sps.norm.ppf(0.975), abs=1e-9)
    assert sq.boundaries([1.0], 0.01, rule)[0] == pytest.approx(sps.norm.ppf(0.995), abs=1e-9)


def test_crossing_probabilities_reproduce_gsdesign_repeated_testing():
    # gsDesign's unit tests (runit.output.R, from Anderson's 2008 Deming talk): repeated testing at
    # the unadjusted +-1.96, equally spaced; summed upper crossing 0.042, 0.063, 0.097 for 2, 4, 10 looks.
    for k, want in ((2, 0.042), (4, 0.063), (10, 0.097)):
        up, lo = sq.crossing_probabilities(equal(k), [1.959964] * k, [-1.959964] * k)
        assert round(float(up.sum()), 3) == want
        np.testing.assert_allclose(up, lo, atol=1e-12)  # symmetric under no drift


@pytest.mark.parametrize("rule", sq.SPENDING)
@pytest.mark.parametrize("t", [equal(3), np.array([0.3, 0.5, 1.0])])
def test_boundaries_spend_alpha_under_the_canonical_joint_normal(rule, t):
    """Independent check: first-crossing probabilities of the computed boundaries by scipy's
    multivariate normal CDF of (Z_1..Z_k), corr sqrt(t_i / t_j), equal the spending increments."""
    c = sq.boundaries(t, 0.05, rule)
    inc = np.diff(sq.spent(rule, 0.025, t), prepend=0.0)
    cov = np.sqrt(np.minimum.outer(t, t) / np.maximum.outer(t, t))
    for k in range(len(t)):
        # P(|Z_j| < c_j, j < k; Z_k >= c_k) = P(|Z_j| < c_j, j < k) - P(|Z_j| < c_j, j < k; Z_k < c_k)
        lo, hi = -c[: k + 1].copy(), c[: k + 1].copy()
        lo[k] = -np.inf
        mvn = sps.multivariate_normal(np.zeros(k + 1), cov[: k + 1, : k + 1])
        inside = 1.0 if k == 0 else sps.multivariate_normal(np.zeros(k), cov[:k, :k]).cdf(hi[:k], lower_limit=lo[:k])
        if k == 0:
            p = sps.norm.sf(c[0])
        else:
            p = inside - mvn.cdf(hi, lower_limit=lo)
        assert p == pytest.approx(inc[k], abs=2e-5)


def test_pocock_and_unequal_looks_values():
    # Pocock-type, 0.025 per side, 3 equal looks: near-constant bounds (Pocock's own is 2.289).
    np.testing.assert_allclose(sq.boundaries(equal(3), 0.05, "pocock"), [2.2794, 2.2949, 2.2959], atol=1e-3)
    np.testing.assert_allclose(sq.information_fractions([3, 5, 10]), [0.3, 0.5, 1.0])
    d = sq.Design((3, 5, 10))
    np.testing.assert_allclose(sq.z_boundaries(d, 1)[:, 0], sq.boundaries([0.3, 0.5, 1.0]))


def test_t_boundaries_first_and_single_look_exact():
    d = sq.Design((3, 5, 10), 0.05, "pocock")
    tb, nom = sq.t_boundaries(d, 2), sq.nominal_t_boundaries(d, 2)
    np.testing.assert_allclose(tb[0], nom[0], rtol=1e-12)  # first look: t at the z boundary's level
    assert (tb[1:] >= nom[1:] - 1e-9).all()  # later looks: the correction is stricter
    one = sq.Design((10,), 0.05)
    # One look at alpha / k per Holm rank: the fixed design's critical values.
    np.testing.assert_allclose(sq.t_boundaries(one, 3)[0], [sps.t.isf(0.05 / (2 * j), 9) for j in (3, 2, 1)])
    assert sq.t_boundaries(one, 1)[0, 0] == pytest.approx(stats.critical_z(10, 1))


# ------------------------------------------------------------------ validation


SWEEP = {"phase": "p", "warmdown_fracs": [0.1, 0.33]}


@pytest.mark.parametrize(
    "seq, message",
    [
        ({"looks": [3, 3, 5]}, "sweep 'int4': sequential.looks must increase, got [3, 3, 5]"),
        ({"looks": [5, 3]}, "sweep 'int4': sequential.looks must increase"),
        ({"looks": [1, 5]}, "sweep 'int4': sequential.looks must start at >= 2 seeds"),
        ({"looks": []}, "sweep 'int4': sequential.looks must be a list"),
        ({"looks": [3, 5.5]}, "sweep 'int4': sequential.looks must be a list"),
        ({"looks": [3, 5], "alpha": 0}, "sweep 'int4': sequential.alpha must be in (0, 1), got 0"),
        ({"looks": [3, 5], "alpha": 1.5}, "sweep 'int4': sequential.alpha must be in (0, 1)"),
        ({"looks": [3, 5], "spending": "haybittle"}, "sweep 'int4': sequential.spending must be one of"),
        ({"looks": [3, 5], "futility": 1}, "sweep 'int4': sequential.futility must be in [0, 1)"),
        ({"looks": [3, 5], "alfa": 0.05}, "sweep 'int4': unknown key(s) sequential.alfa"),
    ],
)
def test_validate_design_rejects_bad_input_naming_sweep_and_key(seq, message):
    with pytest.raises(ValueError) as e:
        sq.validate_design({**SWEEP, "sequential": seq}, "int4")
    assert message in str(e.value)


def test_validate_design_rejects_unpairable_sweep_and_accepts_a_good_one():
    with pytest.raises(ValueError, match=r"sweep 'one': sequential seeds need >= 2 warmdown levels .*\[0.33\]"):
        sq.validate_design({"warmdown_fracs": [0.33], "sequential": {"looks": [3, 5]}}, "one")
    with pytest.raises(ValueError, match="sweep 'x': sequential must be a mapping"):
        sq.validate_design({**SWEEP, "sequential": [3, 5]}, "x")
    d = sq.validate_design({**SWEEP, "sequential": {"looks": [3, 5, 10], "spending": "pocock"}}, "int4")
    assert d == sq.Design((3, 5, 10), 0.05, "pocock", 0.1)


# ------------------------------------------------------------------ the decision mirrors qatgrid.stats


WDS, LRS = (0.1, 0.2, 0.33, 0.5), (0.5, 1.0, 2.0)


def runs_frame(losses: np.ndarray, wds=WDS, lrs=LRS) -> pd.DataFrame:
    """A runs table (the columns stats reads) for R cells from planted (R, W, L, S) losses."""
    rows = []
    for r, w, j, s in np.ndindex(losses.shape):
        rows.append(
            {
                "phase": "p",
                "bits": 4,
                "size": f"{r}M",
                "n_params": 1,
                "optimizer": "muon",
                "schedule": "linear",
                "length_mult": 1,
                "warmdown_frac": wds[w],
                "lr_mult": lrs[j],
                "seed": s,
                "final_val_loss": 3.0 + 0.01 * losses[r, w, j, s],
                "diverged": False,
            }
        )
    return pd.DataFrame(rows)


def test_cell_statistics_and_one_look_design_equal_stats_paired_tests():
    rng = np.random.default_rng(5)
    effects = [[0, 0, 0, 0], [2.0, 0.8, 0.0, 1.0], [6, 3, 0, 4], [0, 0, 3, 3]]
    losses = np.concatenate([sq.planted_losses(rng, 6, e, 5, (1.0, 0.0, 1.0)) for e in effects])
    tests = stats.paired_tests(runs_frame(losses))
    regimes = stats.regimes(tests)
    best, t = sq.cell_statistics(losses, 5)
    res = sq.run_design(sq.Design((5,)), losses)  # the fixed design is the one-look design
    for r in range(losses.shape[0]):
        cell = tests[tests["size"] == f"{r}M"]
        assert cell["best_warmdown"].iloc[0] == WDS[best[r]] == WDS[res["best"][r]]
        np.testing.assert_allclose(t[r], cell["z"].to_numpy(), rtol=1e-9)
        sig = res["significant"][r][np.arange(4) != best[r]]
        assert list(sig) == list(cell["significant"])
        decisive = regimes.set_index("size").loc[f"{r}M", "regime"] == "decisive"
        assert res["decisive"][r] == decisive
    assert 0 < res["decisive"].sum() < losses.shape[0]  # both verdicts occur


def test_decide_cell_reports_decision_boundary_statistic_and_seeds():
    rng = np.random.default_rng(11)
    design = sq.Design((3, 5, 10), 0.05, "pocock", 0.1)
    big = sq.planted_losses(rng, 1, [6.0, 0.0], 10)  # wd10 6 sd worse than wd33
    df = runs_frame(big[..., :3], wds=(0.1, 0.33), lrs=(1.0,))
    d = sq.decide_cell(design, df, 1)
    z = stats.paired_tests(df)["z"].iloc[0]
    assert d.n_seeds == 3 and d.look == 1 and d.best_warmdown == 0.33
    assert d.statistic == pytest.approx(z) and d.boundary == pytest.approx(sq.t_boundaries(design)[0, 0])
    assert d.decision == ("efficacy" if z >= d.boundary else "continue")
    null = sq.planted_losses(np.random.default_rng(3), 1, [0.0, 0.0], 10)
    for look, n in enumerate(design.looks, start=1):
        d = sq.decide_cell(design, runs_frame(null[..., :n], wds=(0.1, 0.33), lrs=(1.0,)), look)
        if d.decision != "continue":
            break
    assert d.decision == "futility" and d.regime == "noise-dominated" and not d.comparisons[0]["significant"]
    with pytest.raises(ValueError, match="look must be in 1..3"):
        sq.decide_cell(design, df, 4)


# ------------------------------------------------------------------ error rates and savings by simulation


def se(p, reps):
    return math.sqrt(p * (1 - p) / reps)


@pytest.mark.parametrize("rule", sq.SPENDING)
def test_family_wise_error_under_no_effect_at_most_alpha(rule):
    """INT4's cells (two warmdowns, looks 3, 5, 10) with no effect and no futility stop (the
    non-binding worst case): P(declared significant) <= alpha + 3 Monte Carlo SE, R = 40,000
    (SE ~ 0.0011, so the bound is 0.053)."""
    reps = 40_000
    out = sq.simulate(sq.Design((3, 5, 10), 0.05, rule, 0.0), [0.0, 0.0], reps, np.random.default_rng(2026))
    p = out["sequential"]["significant"].any(axis=1).mean()
    assert p <= 0.05 + 3 * se(0.05, reps)
    assert p >= 0.05 - 3 * se(0.05, reps)  # and spends it: not a vacuous bound


def test_selected_best_least_favourable_case_and_nonbinding_futility():
    """Phase 2's shape (4 warmdowns x 3 LRs, looks 3, 5): two warmdowns tied best, two 5 sd
    worse. The false decisive claim stays <= alpha; futility only removes rejections."""
    reps = 20_000
    rng = np.random.default_rng(7)
    losses = sq.planted_losses(rng, reps, [0.0, 0.0, 5.0, 5.0], 5, (1.0, 0.0, 1.0))
    without = sq.run_design(sq.Design((3, 5), 0.05, "obrien-fleming", 0.0), losses)
    with_ = sq.run_design(sq.Design((3, 5), 0.05, "obrien-fleming", 0.2), losses)
    assert without["decisive"].mean() <= 0.05 + 3 * se(0.05, reps)
    assert not (with_["significant"] & ~without["significant"]).any()
    assert with_["seeds"].mean() < without["seeds"].mean()


def test_decisive_cells_stop_early_with_the_fixed_verdict():
    """INT4 50M/100M-like cells (standardised paired effect 4, z ~ 12.6 at 10 seeds): the
    sequential design calls them decisive at wd33, as the fixed design does, on fewer seeds."""
    rng = np.random.default_rng(3)
    for rule, max_seeds in (("obrien-fleming", 6.0), ("pocock", 4.5)):
        out = sq.simulate(sq.Design((3, 5, 10), 0.05, rule, 0.1), [4.0, 0.0], 4000, rng)
        s, f = out["sequential"], out["fixed"]
        assert f["decisive"].all() and (f["best"] == 1).all()
        assert (s["decisive"] & (s["best"] == 1)).mean() >= 0.99
        assert s["seeds"].mean() <= max_seeds


def test_decide_cell_rejects_more_seeds_than_the_look_plans():
    null = sq.planted_losses(np.random.default_rng(3), 1, [0.0, 0.0], 10)
    with pytest.raises(ValueError, match="look 1 plans 3 seeds, the runs pair 5"):
        sq.decide_cell(sq.Design((3, 5, 10)), runs_frame(null[..., :5], wds=(0.1, 0.33), lrs=(1.0,)), 1)
