import pytest
import torch

from qatgrid.optim.muon import NS_COEFFICIENTS, Muon, newton_schulz


def quintic_float64(g: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """The same quintic iteration written out independently, in float64: X <- aX + (bA + cA^2)X, A = XX^T."""
    a, b, c = NS_COEFFICIENTS
    x = g.double()
    tall = x.shape[0] > x.shape[1]
    x = x.T if tall else x
    x = x / max(x.norm().item(), eps)
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if tall else x


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (96, 96)])
def test_fp32_iteration_matches_float64_iteration(shape):
    g = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    ours = newton_schulz(g, dtype=torch.float32)
    assert ours.dtype == torch.float32 and ours.shape == shape
    ref = quintic_float64(g)
    assert torch.allclose(ours.double(), ref, atol=2e-5, rtol=0)
    # Not the exact orthogonal factor (by design): singular values spread around 1.
    s = torch.linalg.svdvals(ref)
    assert 0.5 < s.min() < 0.95 and s.max() < 1.3


def baseline_newton_schulz(G: torch.Tensor, steps: int = 5, eps: float = 1e-7) -> torch.Tensor:
    """The parameter-golf baseline's bf16 iteration (`zeropower_via_newtonschulz5`), from its formula:
    X = bf16(G) / (|X|_F + eps), transposed if tall; per step A = X X^T, B = b A + c A @ A, X = a X + B @ X."""
    a, b, c = NS_COEFFICIENTS
    X = G.bfloat16()
    X /= X.norm() + eps
    transposed = G.size(0) > G.size(1)
    if transposed:
        X = X.T
    for _ in range(steps):
        A = X @ X.T
        B = b * A + c * A @ A
        X = a * X + B @ X
    return X.T if transposed else X


@pytest.mark.parametrize("shape", [(64, 256), (256, 64), (96, 96), (33, 130)])
def test_bf16_iteration_is_the_baselines_bit_for_bit(shape):
    for seed in range(3):
        g = torch.randn(shape, generator=torch.Generator().manual_seed(seed)) * 10 ** (seed - 1)
        ours = newton_schulz(g, dtype=torch.bfloat16)
        assert ours.dtype == torch.bfloat16 and torch.equal(ours, baseline_newton_schulz(g))


def test_bf16_iteration_is_coarser_than_fp32():
    g = torch.randn(64, 256, generator=torch.Generator().manual_seed(1))
    ref = quintic_float64(g)
    bf16 = newton_schulz(g, dtype=torch.bfloat16).double()
    fp32 = newton_schulz(g, dtype=torch.float32).double()
    assert (bf16 - ref).abs().max() > 10 * (fp32 - ref).abs().max()  # bf16 really ran in bf16
    assert (bf16 - ref).abs().max() < 0.05


def make_params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(s, generator=g)) for s in ((32, 128), (128, 32), (48, 48))]


def run(opt_cls, steps: int = 4, **kw) -> list[torch.Tensor]:
    params = make_params(0)
    opt = opt_cls(params, lr=0.2, momentum=0.9, nesterov=True, weight_decay=0.01, **kw)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g)
        opt.step()
    return [p.detach().clone() for p in params]


def test_bf16_updates_near_torch_optim_muon():
    """torch.optim.Muon keeps an EMA buffer, ours the baseline's sum: with a constant momentum the two are
    proportional, and the Newton-Schulz normalisation removes the factor, so the updates agree up to the
    bf16 rounding of two operation orders (the baseline's separate products against its fused addmm)."""
    start = [p.detach() for p in make_params(0)]
    ours = run(Muon, ns_dtype=torch.bfloat16)
    theirs = run(torch.optim.Muon, adjust_lr_fn="original")
    for p0, a, b in zip(start, ours, theirs):
        moved = (b - p0).abs().max()
        assert moved > 0.1
        assert (a - b).abs().max() < 0.06 * moved  # measured: 2.9-4.4%
        assert 1.0 < (a - p0).norm() / (b - p0).norm() < 1.02  # the fused order's steps come out smaller
    fp32 = run(Muon, ns_dtype=torch.float32)
    assert any(not torch.equal(a, b) for a, b in zip(fp32, ours))


def test_fp32_step_is_the_hand_written_update():
    p = torch.nn.Parameter(torch.randn(16, 64, generator=torch.Generator().manual_seed(2)))
    p0 = p.detach().clone()
    g1, g2 = torch.randn(2, 16, 64, generator=torch.Generator().manual_seed(3))
    opt = Muon([p], lr=0.1, momentum=0.85, ns_dtype=torch.float32)
    for g, m in ((g1, 0.85), (g2, 0.9)):  # momentum changed between steps, as the warmup does
        opt.param_groups[0]["momentum"] = m
        p.grad = g.clone()
        opt.step()
    buf1 = g1
    u1 = quintic_float64(g1 + 0.85 * buf1)
    buf2 = 0.9 * buf1 + g2
    u2 = quintic_float64(g2 + 0.9 * buf2)
    expected = p0.double() - 0.1 * u1 - 0.1 * u2  # rows < cols: no LR scale-up
    assert torch.allclose(p.detach().double(), expected, atol=1e-5)


def test_rejects_non_matrices():
    with pytest.raises(ValueError, match="2-D parameters only, got shape \\(4,\\)"):
        Muon([torch.nn.Parameter(torch.zeros(4))], lr=0.1)
