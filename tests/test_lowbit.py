"""INT3, INT2 and BitNet b1.58 ternary: values, codes, straight-through gradient, probe distances."""

import pytest
import torch

from qatgrid.probe import grid_distance, probe_weights
from qatgrid.quant import QATLinear, fake_quant, quantize_rows, row_scale, ternary_codes, ternary_scale


def reference_int(w: list[list[float]], bits: int) -> list[list[float]]:
    """Element by element in plain Python (round() is half-to-even): per-row absmax scale
    amax / (2^(b-1) - 1), codes clamped to +-(2^(b-1) - 1)."""
    q = 2 ** (bits - 1) - 1
    out = []
    for row in w:
        s = max(abs(x) for x in row) / q
        out.append([min(max(round(x / s), -q), q) * s for x in row])
    return out


@pytest.mark.parametrize("bits", [3, 2])
def test_int3_int2_match_plain_python_reference(bits):
    w = torch.randn(12, 33, generator=torch.Generator().manual_seed(bits), dtype=torch.float64)
    expected = torch.tensor(reference_int(w.tolist(), bits), dtype=torch.float64)
    torch.testing.assert_close(quantize_rows(w, bits), expected, rtol=0, atol=1e-12)


def test_hand_computed_int3_and_int2_rows():
    # INT3: qmax 3, scale 0.75 / 3 = 0.25; w/s = 3, 0.5, -1.5, 1.25, 1.75 -> 3, 0, -2, 1, 2 (half to even)
    w = torch.tensor([[0.75, 0.125, -0.375, 0.3125, 0.4375]])
    assert torch.equal(quantize_rows(w, 3), torch.tensor([[0.75, 0.0, -0.5, 0.25, 0.5]]))
    # INT2: qmax 1, scale = absmax 1.0; w/s = 1, 0.5, -0.25, 0.75, -1 -> 1, 0, 0, 1, -1: the grid {-s, 0, s}
    w = torch.tensor([[1.0, 0.5, -0.25, 0.75, -1.0]])
    assert torch.equal(quantize_rows(w, 2), torch.tensor([[1.0, 0.0, 0.0, 1.0, -1.0]]))


@pytest.mark.parametrize("bits,levels", [(3, 7), (2, 3)])
def test_int_codes_and_levels(bits, levels):
    w = torch.randn(16, 200, generator=torch.Generator().manual_seed(0))
    codes = quantize_rows(w, bits) / row_scale(w, bits)
    torch.testing.assert_close(codes, codes.round(), rtol=0, atol=1e-5)
    assert codes.round().abs().max() == (levels - 1) // 2
    for row in codes.round():
        assert row.unique().numel() <= levels
        assert row.abs().max() == (levels - 1) // 2  # the absmax weight sits on the outer code
    assert codes.round().unique().numel() == levels


def test_ternary_hand_computed():
    # gamma = mean(|1|, |-0.5|, |0.25|, |-0.25|) = 0.5; W / (gamma + 1e-5) ~ 2, -1, 0.5, -0.5
    # -> round 2, -1, 0, -0 -> clamp 1, -1, 0, 0 -> forward gamma * codes
    w = torch.tensor([[1.0, -0.5], [0.25, -0.25]])
    assert ternary_scale(w).item() == 0.5
    assert torch.equal(ternary_codes(w), torch.tensor([[1.0, -1.0], [0.0, 0.0]]))
    assert torch.equal(quantize_rows(w, 1), torch.tensor([[0.5, -0.5], [0.0, 0.0]]))


def test_ternary_is_per_tensor_with_codes_in_minus_one_zero_one():
    w = torch.randn(8, 64, generator=torch.Generator().manual_seed(3))
    w[0] *= 10  # one loud row: per-tensor absmean, unlike per-row absmax, lets it saturate
    codes = ternary_codes(w)
    assert set(codes.unique().tolist()) == {-1.0, 0.0, 1.0}
    q = quantize_rows(w, 1)
    gamma = w.abs().mean()
    torch.testing.assert_close(q, codes * gamma)
    assert set(q.unique().tolist()) == {-gamma.item(), 0.0, gamma.item()}
    # gamma ~ 1.7 (set by the loud row): it saturates, the quiet rows mostly round to 0
    assert (codes[0] != 0).float().mean() > 0.8 and (codes[1:] == 0).float().mean() > 0.5


@pytest.mark.parametrize("bits", [3, 2, 1])
def test_straight_through_gradient(bits):
    w = torch.randn(6, 20, generator=torch.Generator().manual_seed(bits), requires_grad=True)
    w.data[0, 0] = 50.0  # for ternary, far beyond the clamp: the gradient still passes
    upstream = torch.randn(6, 20, generator=torch.Generator().manual_seed(9))
    q = fake_quant(w, bits)
    (q * upstream).sum().backward()
    assert torch.equal(w.grad, upstream)
    torch.testing.assert_close(q.detach(), quantize_rows(w.detach(), bits))


def test_qat_linear_accepts_the_new_bit_widths_only():
    x = torch.randn(3, 8, generator=torch.Generator().manual_seed(0))
    for bits in (3, 2, 1):
        layer = QATLinear(8, 4, bits)
        torch.testing.assert_close(layer(x), x @ quantize_rows(layer.weight.detach(), bits).T)
    with pytest.raises(ValueError, match="bits must be one of"):
        QATLinear(8, 4, 5)


def test_probe_reports_distance_to_every_grid():
    w = torch.tensor([[1.0, -0.5], [0.25, -0.25]])
    # ternary: u = w / (0.5 + 1e-5) ~ 2, -1, 0.5, -0.5; nearest code 1, -1, 0 (or +-1), 0 -> ~1, 0, 0.5, 0.5
    torch.testing.assert_close(grid_distance(w, 1), torch.tensor([[1.0, 0.0], [0.5, 0.5]]), atol=1e-4, rtol=0)
    # INT2 per row: row 0 s=1: u = 1, -0.5 -> 0, 0.5; row 1 s=0.25: u = 1, -1 -> 0, 0
    torch.testing.assert_close(grid_distance(w, 2), torch.tensor([[0.0, 0.5], [0.0, 0.0]]))
    state = {
        "blocks.0.attn.q.weight": torch.randn(16, 32, generator=torch.Generator().manual_seed(1)),
        "tok_emb.weight": torch.randn(10, 4),
    }
    p = probe_weights(state, 6)
    assert list(p["distances"]) == ["int8", "int6", "int4", "int3", "int2", "ternary"]
    assert p["distances"]["int6"] == pytest.approx(p["mean_distance"])
    w = state["blocks.0.attn.q.weight"]
    assert p["distances"]["ternary"] == pytest.approx(float(grid_distance(w, 1).mean()), rel=1e-6)
    # +-0.3 everywhere: gamma = 0.3, every weight on a code (absmean re-quantisation is not
    # idempotent once zeros appear, so a quantised matrix with zeros would not do)
    on_grid = probe_weights({"blocks.0.w": torch.where(w > 0, 0.3, -0.3)}, 6)["distances"]
    assert on_grid["ternary"] == pytest.approx(0.0, abs=1e-4) and on_grid["int2"] == 0.0
