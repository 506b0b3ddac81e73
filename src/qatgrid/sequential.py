"""Group-sequential seeds: run a cell's seeds in looks and stop once its verdict is settled.

A design is a list of looks (cumulative seed counts, e.g. [3, 5, 10]), an error rate alpha and a
Lan-DeMets spending rule. After each look the cell's paired tests (as `qatgrid.stats` defines
them: each warmdown at its best LR, the best warmdown against each alternative, paired by seed)
decide: stop for efficacy, stop for futility, or run the next look's seeds.

Conventions (those of R's gsDesign `test.type=2` and ldbounds `sides=2`):
- Boundaries are symmetric two-sided with alpha/2 spent per side. The spending function is
  applied to the one-sided level a = alpha/2:
      O'Brien-Fleming type  a(t) = 2 - 2 Phi(z_{1-a/2} / sqrt(t))
      Pocock type           a(t) = a ln(1 + (e - 1) t)
  so one look (K = 1) gives z_{1-alpha/2}, the fixed design's two-sided test.
- Information fractions are t_k = n_k / n_K (one paired difference per seed).
- The boundary c_k solves P(|Z_j| < c_j for j < k, Z_k >= c_k) = a(t_k) - a(t_{k-1}) under the
  canonical joint distribution of the z statistics (corr(Z_i, Z_j) = sqrt(t_i / t_j)), by the
  recursive numerical integration of Armitage, McPherson & Rowe (1969) on the score scale
  S_k = Z_k sqrt(t_k), Simpson's rule on the continuation region (Jennison & Turnbull 2000, ch. 19).
- Small samples: with n_k seeds the paired statistic is Student's t on n_k - 1 df, not z. Mapping
  each z boundary to the t at the same nominal level (the "significance level approach",
  Jennison & Turnbull 2000; `nominal_t_boundaries`) is exact at the first look but, with
  2-9 df, lets the t cross more often than the z boundaries allow (0.054 instead of 0.050 for
  looks [3, 5]). The t boundaries used (`t_boundaries`) spend the same alpha on the t statistics
  themselves: their null joint distribution does not depend on the noise sd, so the crossing
  probabilities are computed once, on a million simulated paths with a fixed seed (Monte Carlo
  error ~1e-4; Jennison & Turnbull 1991 compute the same exactly by numerical integration); the
  first look's is exactly t.ppf(1 - a(t_1), n_1 - 1). Error rates are checked
  by independent simulation (`simulate`, tests/test_sequential.py, benchmarks/sequential_sim.py).

Multiplicity, mirroring the fixed design (`stats.paired_tests` + `stats.regimes`): the fixed
design calls a cell decisive when every comparison of the best warmdown is significant after
Holm, i.e. the r-th smallest p (r = 0..k-1) is below alpha / (k - r). The sequential rule is the
same step-down with a boundary set per Holm level: the r-th smallest p at look j must be below the
nominal level of the alpha / (k - r) boundaries at look j. With one look this is exactly the
fixed design (tested). "Every comparison must cross" makes the decisive claim an
intersection-union test (Berger 1982): for a fixed best each comparison at level alpha suffices,
and Holm's smaller levels only make it stricter. The best is picked from the data; the worst case
we know of is two levels tied at the top with the others far worse, where the rule is the
two-sided test at alpha (the side is the data's pick). This is checked by simulation
(`simulate`), LR selection included, not proven for every configuration.

Futility is non-binding (the boundaries are computed as if it never stopped a cell, so stopping
for futility can only lower the error rate): at a look before the last, a cell stops when the
conditional power of its weakest comparison - under the current trend, against the final alpha
boundary, the most lenient one a decisive verdict needs - is below `futility`:
    CP = 1 - Phi((c_K - z_k / sqrt(t_k)) / sqrt(1 - t_k)),
z_k the z with the same one-sided p as the weakest comparison's t. `futility: 0` never stops early
for futility.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import optimize
from scipy import stats as sps

SPENDING = ("obrien-fleming", "pocock")
DESIGN_KEYS = ("looks", "alpha", "spending", "futility")
DECISIONS = ("continue", "efficacy", "futility")
CONTINUE, EFFICACY, FUTILITY = 0, 1, 2
_GRID = 801  # Simpson points on each look's continuation region (odd)


# ---------------------------------------------------------------- the design and its validation


@dataclass(frozen=True)
class Design:
    looks: tuple[int, ...]  # cumulative seeds per look
    alpha: float = 0.05  # two-sided; alpha/2 per side
    spending: str = "obrien-fleming"
    futility: float = 0.1  # conditional-power threshold; 0: no futility stop

    @property
    def fractions(self) -> np.ndarray:
        return information_fractions(self.looks)


def validate_design(spec: dict, sweep: str) -> Design:
    """The sweep's `sequential` block as a Design; `spec` is the sweep's mapping (its
    `warmdown_fracs` and `sequential` keys). Every error names the sweep and the key."""
    where = f"sweep {sweep!r}"
    seq = spec.get("sequential")
    if not isinstance(seq, dict):
        raise ValueError(f"{where}: sequential must be a mapping with keys {', '.join(DESIGN_KEYS)}, got {seq!r}")
    unknown = sorted(set(seq) - set(DESIGN_KEYS))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) sequential.{', sequential.'.join(unknown)}")
    wds = spec.get("warmdown_fracs") or []
    if len(set(wds)) < 2:
        raise ValueError(
            f"{where}: sequential seeds need >= 2 warmdown levels to pair (warmdown_fracs), got {list(wds)}"
        )
    looks = seq.get("looks")
    if (
        not isinstance(looks, list | tuple)
        or not looks
        or not all(isinstance(n, int) and not isinstance(n, bool) for n in looks)
    ):
        raise ValueError(f"{where}: sequential.looks must be a list of cumulative seed counts, got {looks!r}")
    if looks[0] < 2:
        raise ValueError(f"{where}: sequential.looks must start at >= 2 seeds (a paired t needs two), got {looks}")
    if any(b <= a for a, b in zip(looks, looks[1:])):
        raise ValueError(f"{where}: sequential.looks must increase, got {looks}")
    alpha = seq.get("alpha", Design.alpha)
    if isinstance(alpha, bool) or not isinstance(alpha, int | float) or not 0 < alpha < 1:
        raise ValueError(f"{where}: sequential.alpha must be in (0, 1), got {alpha!r}")
    spending = seq.get("spending", Design.spending)
    if spending not in SPENDING:
        raise ValueError(f"{where}: sequential.spending must be one of {', '.join(SPENDING)}, got {spending!r}")
    futility = seq.get("futility", Design.futility)
    if isinstance(futility, bool) or not isinstance(futility, int | float) or not 0 <= futility < 1:
        raise ValueError(f"{where}: sequential.futility must be in [0, 1), got {futility!r}")
    return Design(tuple(looks), float(alpha), spending, float(futility))


# ---------------------------------------------------------------- Lan-DeMets boundaries


def information_fractions(looks) -> np.ndarray:
    """t_k = n_k / n_K: each seed adds one paired difference."""
    n = np.asarray(looks, dtype=float)
    return n / n[-1]


def spent(rule: str, one_sided: float, t: np.ndarray) -> np.ndarray:
    """Cumulative one-sided alpha spent by information fraction t (Lan & DeMets 1983)."""
    t = np.asarray(t, dtype=float)
    if rule == "obrien-fleming":
        return 2 - 2 * sps.norm.cdf(sps.norm.ppf(1 - one_sided / 2) / np.sqrt(t))
    if rule == "pocock":
        return one_sided * np.log1p((math.e - 1) * t)
    raise ValueError(f"spending must be one of {', '.join(SPENDING)}, got {rule!r}")


def _simpson(lo: float, hi: float) -> tuple[np.ndarray, np.ndarray]:
    x = np.linspace(lo, hi, _GRID)
    w = np.ones(_GRID)
    w[1:-1:2], w[2:-1:2] = 4, 2
    return x, w * (hi - lo) / (3 * (_GRID - 1))


def _crossings(t, upper, lower, drift: float = 0.0, solve=None):
    """Per-look probabilities of first crossing the upper and the lower boundary (z scale), the
    recursion on S_k = Z_k sqrt(t_k) ~ N(drift t_k, t_k) with independent increments. With
    `solve(k, prob_upper)` given, each look's upper boundary is first found by root finding
    (symmetric: lower = -upper) and written into `upper`/`lower`."""
    t = np.asarray(t, dtype=float)
    up, lo = np.zeros(t.size), np.zeros(t.size)
    x = dens = None  # the continuation region's grid (S scale) and sub-density times weights
    for k in range(t.size):
        dt = t[k] - (t[k - 1] if k else 0.0)
        sd, mu = math.sqrt(dt), drift * dt
        s = math.sqrt(t[k])

        def p_up(c, x=x, dens=dens, sd=sd, mu=mu, s=s):
            if x is None:
                return float(sps.norm.sf((c * s - mu) / sd))
            return float(dens @ sps.norm.sf((c * s - x - mu) / sd))

        def p_lo(c, x=x, dens=dens, sd=sd, mu=mu, s=s):
            if x is None:
                return float(sps.norm.cdf((c * s - mu) / sd))
            return float(dens @ sps.norm.cdf((c * s - x - mu) / sd))

        if solve is not None:
            target = solve(k)
            upper[k] = optimize.brentq(lambda c: p_up(c) - target, -10.0, 40.0, xtol=1e-12)
            lower[k] = -upper[k]
        up[k], lo[k] = p_up(upper[k]), p_lo(lower[k])
        if k + 1 < t.size:
            y, w = _simpson(lower[k] * s, upper[k] * s)
            if x is None:
                g = sps.norm.pdf((y - mu) / sd) / sd
            else:
                g = sps.norm.pdf((y[:, None] - x[None, :] - mu) / sd) @ dens / sd
            x, dens = y, g * w
    return up, lo


@lru_cache(maxsize=256)
def _boundaries(t: tuple[float, ...], alpha: float, rule: str) -> tuple[float, ...]:
    a = spent(rule, alpha / 2, np.array(t))
    inc = np.diff(a, prepend=0.0)
    upper, lower = np.zeros(len(t)), np.zeros(len(t))
    _crossings(t, upper, lower, solve=lambda k: inc[k])
    return tuple(upper)


def boundaries(t, alpha: float = 0.05, rule: str = "obrien-fleming") -> np.ndarray:
    """Lan-DeMets z boundaries c_1..c_K at information fractions t (last = 1): symmetric
    two-sided, alpha/2 per side (continue while |Z_k| < c_k)."""
    t = tuple(float(v) for v in np.asarray(t, dtype=float))
    if not t or abs(t[-1] - 1) > 1e-12 or any(b <= a for a, b in zip(t, t[1:])) or t[0] <= 0:
        raise ValueError(f"information fractions must increase in (0, 1] and end at 1, got {list(t)}")
    return np.array(_boundaries(t, float(alpha), rule))


def crossing_probabilities(t, upper, lower, drift: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(upper, lower): probability of first crossing each boundary at each look, given the
    z boundaries and the drift theta = E[Z at t = 1]."""
    return _crossings(t, np.asarray(upper, dtype=float), np.asarray(lower, dtype=float), drift)


@lru_cache(maxsize=256)
def _z_table(looks: tuple[int, ...], alpha: float, rule: str, k: int) -> np.ndarray:
    """z[j, r]: the boundary at look j for the comparison of Holm rank r (0 = smallest p), from
    the boundaries at level alpha / (k - r); its nominal one-sided level is 1 - Phi(z)."""
    t = information_fractions(looks)
    z = np.stack([boundaries(t, alpha / (k - r), rule) for r in range(k)], axis=1)
    return z


def z_boundaries(design: Design, k: int) -> np.ndarray:
    """(looks, k) Lan-DeMets z boundaries: column r for Holm rank r (level alpha / (k - r))."""
    return _z_table(tuple(design.looks), design.alpha, design.spending, int(k))


def nominal_t_boundaries(design: Design, k: int = 1) -> np.ndarray:
    """The significance-level approach: each z boundary at its nominal level on the look's t,
    t.ppf(Phi(c_k), n_k - 1). Exact at the first look, but with 2-9 df it lets the paired t cross
    more often than the z boundaries allow (sequential-sim: 0.054 for looks [3, 5] at alpha 0.05),
    so the decision uses `t_boundaries`."""
    n = np.asarray(design.looks, dtype=float)[:, None]
    return sps.t.ppf(sps.norm.cdf(z_boundaries(design, k)), n - 1)


CALIBRATION_SEED, CALIBRATION_PATHS, _CHUNK = 20261204, 1_000_000, 100_000


@lru_cache(maxsize=256)
def _t_calibrated(looks: tuple[int, ...], alpha: float, rule: str) -> tuple[float, ...]:
    """Boundaries for the paired t itself. Under no effect the sequence of paired t statistics at
    the looks has one distribution whatever the seed-noise sd (it is pivotal), so its crossing
    probabilities can be computed once: on CALIBRATION_PATHS simulated sequences of N(0, 1)
    differences (fixed seed: deterministic), look k's boundary is the |t| value that the paths
    still inside every earlier boundary exceed with probability 2 (a(t_k) - a(t_{k-1})), the
    same spending as the z boundaries. The first look's is exactly t.ppf(1 - a(t_1), n_1 - 1).
    Monte Carlo error of each look's crossing probability: about sqrt(p / 2e6) (<= 1.2e-4 at
    p = 0.025), checked against independent simulations in the tests."""
    n = np.asarray(looks)
    inc = np.diff(spent(rule, alpha / 2, n / n[-1]), prepend=0.0)
    rng = np.random.default_rng(CALIBRATION_SEED)
    abs_t = np.empty((CALIBRATION_PATHS, n.size))
    for i in range(0, CALIBRATION_PATHS, _CHUNK):
        x = rng.standard_normal((_CHUNK, n[-1]))
        s, q = np.cumsum(x, axis=1)[:, n - 1], np.cumsum(x * x, axis=1)[:, n - 1]
        var = (q - s * s / n) / (n - 1)
        abs_t[i : i + _CHUNK] = np.abs(s / n) / np.sqrt(var / n)
    c = [float(sps.t.isf(inc[0], n[0] - 1))]
    alive = abs_t[:, 0] < c[0]
    for k in range(1, n.size):
        m = int(round(2 * inc[k] * CALIBRATION_PATHS))  # paths that should first cross at look k
        a = np.sort(abs_t[alive, k])[::-1]
        c.append(float(a[m - 1]) if 0 < m <= a.size else float("inf"))
        alive &= abs_t[:, k] < c[-1]
    return tuple(c)


def t_boundaries(design: Design, k: int = 1) -> np.ndarray:
    """(looks, k) boundaries on the paired-t scale (n_k - 1 df), column r for Holm rank r."""
    cols = [_t_calibrated(tuple(design.looks), design.alpha / (k - r), design.spending) for r in range(k)]
    return np.array(cols).T


def nominal_levels(design: Design, k: int = 1) -> np.ndarray:
    """(looks, k) one-sided p a comparison must be below: the t boundaries' tail on n_k - 1 df
    (so a look whose seeds fell short, a diverged run, keeps the level)."""
    n = np.asarray(design.looks, dtype=float)[:, None]
    return sps.t.sf(t_boundaries(design, k), n - 1)


# ---------------------------------------------------------------- the decision at a look


def decide_arrays(design: Design, look: int, t_stat: np.ndarray, n_pairs: np.ndarray) -> dict:
    """Vectorised decision for R cells with k comparisons each at look index `look` (0-based):
    t_stat (R, k) paired t of each alternative against the cell's best (>= 0; NaN: no test),
    n_pairs (R, k) seeds paired. Returns decision codes (R,), per-comparison significance
    (R, k) by the step-down, the t boundary each comparison faced (R, k), the weakest
    comparison's conditional power (R,), its statistic (R,) and its column (R,)."""
    t_stat = np.asarray(t_stat, dtype=float)
    n_pairs = np.asarray(n_pairs, dtype=float)
    R, k = t_stat.shape
    level = nominal_levels(design, k)[look]  # (k,) by Holm rank
    df = np.maximum(n_pairs - 1, 1)
    p = np.where(np.isnan(t_stat) | (n_pairs < 2), 1.0, sps.t.sf(np.nan_to_num(t_stat, nan=0.0), df))
    order = np.argsort(p, axis=1, kind="stable")
    p_sorted = np.take_along_axis(p, order, axis=1)
    crossed_sorted = np.cumprod(p_sorted < level[None, :], axis=1).astype(bool)  # step-down
    significant = np.empty_like(crossed_sorted)
    np.put_along_axis(significant, order, crossed_sorted, axis=1)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(k), (R, k)), axis=1)
    bound_t = sps.t.isf(level[rank], df)
    efficacy = significant.all(axis=1)
    last = look == len(design.looks) - 1
    # Futility: conditional power of the weakest comparison under its current trend.
    tk = design.fractions[look]
    c_final = z_boundaries(design, k)[-1, -1]
    z_weak = sps.norm.isf(np.clip(p_sorted[:, -1], 1e-300, 1.0))
    if last:
        cp = np.where(efficacy, 1.0, 0.0)
    else:
        cp = sps.norm.sf((c_final - z_weak / math.sqrt(tk)) / math.sqrt(1 - tk))
    decision = np.where(efficacy, EFFICACY, np.where(last | (cp < design.futility), FUTILITY, CONTINUE))
    weakest = np.take_along_axis(t_stat, order[:, -1:], axis=1)[:, 0]
    return {
        "decision": decision,
        "weakest": order[:, -1],
        "significant": significant,
        "boundary_t": bound_t,
        "conditional_power": cp,
        "statistic": weakest,
    }


@dataclass
class Decision:
    decision: str  # continue, efficacy or futility
    look: int  # 1-based
    n_seeds: int  # seeds used (the look's pairs)
    best_warmdown: float
    statistic: float  # the weakest comparison's paired t (the one a decisive verdict waits on)
    boundary: float  # the t boundary that comparison faced at this look
    conditional_power: float
    regime: str | None  # decisive / noise-dominated once stopped, None while continuing
    comparisons: list[dict]  # alt_warmdown, n_pairs, z (paired t), boundary_t, significant


def decide_cell(design: Design, runs, look: int) -> Decision:
    """The decision for one cell at look `look` (1-based) from its runs-table rows (the columns
    `stats.paired_tests` reads; only the seeds of looks 1..look should be present). The paired
    statistics are `stats.paired_tests`', so the sequential and the fixed analyses share them."""
    from . import stats

    if not 1 <= look <= len(design.looks):
        raise ValueError(f"look must be in 1..{len(design.looks)}, got {look}")
    tests = stats.paired_tests(runs, alpha=design.alpha)
    if tests.empty or tests[stats.CELL].drop_duplicates().shape[0] != 1:
        raise ValueError("decide_cell needs the runs of exactly one cell with >= 2 warmdown levels")
    t_stat = tests["z"].to_numpy(dtype=float)[None, :]
    n_pairs = tests["n_pairs"].to_numpy(dtype=float)[None, :]
    if n_pairs.max() > design.looks[look - 1]:
        raise ValueError(f"look {look} plans {design.looks[look - 1]} seeds, the runs pair {int(n_pairs.max())}")
    out = decide_arrays(design, look - 1, t_stat, n_pairs)
    code = int(out["decision"][0])
    comps = [
        {
            "alt_warmdown": float(a),
            "n_pairs": int(n),
            "z": float(z),
            "boundary_t": float(b),
            "significant": bool(s),
        }
        for a, n, z, b, s in zip(
            tests["alt_warmdown"], tests["n_pairs"], tests["z"], out["boundary_t"][0], out["significant"][0]
        )
    ]
    weak = int(out["weakest"][0])
    return Decision(
        decision=DECISIONS[code],
        look=look,
        n_seeds=int(tests["n_pairs"].max()),
        best_warmdown=float(tests["best_warmdown"].iloc[0]),
        statistic=float(out["statistic"][0]),
        boundary=float(out["boundary_t"][0, weak]),
        conditional_power=float(out["conditional_power"][0]),
        regime=None if code == CONTINUE else ("decisive" if code == EFFICACY else "noise-dominated"),
        comparisons=comps,
    )


# ---------------------------------------------------------------- planted tables and simulation


def cell_statistics(losses: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """`stats.paired_tests`' arithmetic on arrays: losses (R, W, L, S) by replicate, warmdown
    (ascending), LR multiplier (ascending) and seed; the first n seeds. Each warmdown at the LR
    with the lowest mean, the best warmdown the lowest of those means (first on ties, as pandas'
    idxmin), then the paired t of each other warmdown against it. Returns (best index (R,),
    t (R, W-1) of the alternatives in warmdown order)."""
    x = losses[..., :n]
    R, W, L, _ = x.shape
    lr = x.mean(axis=3).argmin(axis=2)  # (R, W)
    sel = np.take_along_axis(x, lr[:, :, None, None], axis=2)[:, :, 0, :]  # (R, W, n)
    best = sel.mean(axis=2).argmin(axis=1)  # (R,)
    d = sel - np.take_along_axis(sel, best[:, None, None], axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):  # the best against itself: 0 / 0, dropped below
        t = d.mean(axis=2) / (d.std(axis=2, ddof=1) / math.sqrt(n))
    alt = np.ones((R, W), dtype=bool)
    alt[np.arange(R), best] = False
    return best, t[alt].reshape(R, W - 1)


def planted_losses(rng, reps: int, effects, n_seeds: int, lr_penalty=(), seed_sd: float = 1.0) -> np.ndarray:
    """(reps, W, L, S) losses in units of the paired-difference sd: warmdown w at LR l on seed s
    is effects[w] + lr_penalty[l] + u_s + e, u_s ~ N(0, seed_sd^2) shared by the seed's runs
    (pairing removes it), e ~ N(0, 1/2) per run, so a paired difference has sd 1 and
    effects[a] - effects[b] is the standardised paired effect."""
    effects = np.asarray(effects, dtype=float)
    lrp = np.asarray(lr_penalty if len(lr_penalty) else [0.0], dtype=float)
    shape = (reps, effects.size, lrp.size, n_seeds)
    u = rng.normal(0.0, seed_sd, (reps, 1, 1, n_seeds))
    e = rng.normal(0.0, math.sqrt(0.5), shape)
    return effects[None, :, None, None] + lrp[None, None, :, None] + u + e


def run_design(design: Design, losses: np.ndarray) -> dict:
    """Apply the design to R planted cells (losses (R, W, L, S) with S >= the last look). Per
    cell: the look index it stopped at, the decision, the best warmdown then, its regime
    (True: decisive) and per-alternative significance (alternatives in warmdown order,
    the best's own column False)."""
    R, W = losses.shape[:2]
    stop = np.full(R, -1)
    decision = np.zeros(R, dtype=int)
    best = np.zeros(R, dtype=int)
    sig = np.zeros((R, W), dtype=bool)
    for j, n in enumerate(design.looks):
        open_ = stop < 0
        if not open_.any():
            break
        b, t = cell_statistics(losses[open_], n)
        out = decide_arrays(design, j, t, np.full(t.shape, n))
        done = out["decision"] != CONTINUE
        idx = np.flatnonzero(open_)[done]
        stop[idx], decision[idx], best[idx] = j, out["decision"][done], b[done]
        alt = np.ones((b.size, W), dtype=bool)
        alt[np.arange(b.size), b] = False
        s = np.zeros((b.size, W), dtype=bool)
        s[alt] = out["significant"].ravel()
        sig[idx] = s[done]
    return {
        "stop": stop,
        "seeds": np.asarray(design.looks)[stop],
        "decision": decision,
        "best": best,
        "decisive": decision == EFFICACY,
        "significant": sig,
    }


def fixed_design(design: Design) -> Design:
    """The fixed design the sequential one replaces: all seeds, one look, the study's tests."""
    return Design((design.looks[-1],), design.alpha, design.spending, 0.0)


def simulate(design: Design, effects, reps: int, rng, lr_penalty=(), seed_sd: float = 1.0) -> dict:
    """Operating characteristics of `design` on `reps` planted cells (see `planted_losses`), the
    fixed design run on the same tables: error and agreement rates and the mean seeds."""
    losses = planted_losses(rng, reps, effects, design.looks[-1], lr_penalty, seed_sd)
    seq, fix = run_design(design, losses), run_design(fixed_design(design), losses)
    return {"sequential": seq, "fixed": fix}
