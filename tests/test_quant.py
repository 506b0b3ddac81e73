import numpy as np
import pytest
import torch

from qatgrid.quant import QATLinear, fake_quant, qmax, quantize_rows, row_scale


def reference_quantize(w: np.ndarray, bits: int) -> np.ndarray:
    """Independent numpy version of the documented convention (np.round is half-to-even too)."""
    q = 2 ** (bits - 1) - 1
    s = np.abs(w).max(axis=1, keepdims=True) / q
    return np.clip(np.round(w / s), -q, q) * s


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_matches_numpy_reference(bits):
    w = torch.randn(16, 40, generator=torch.Generator().manual_seed(bits), dtype=torch.float64)
    np.testing.assert_allclose(quantize_rows(w, bits).numpy(), reference_quantize(w.numpy(), bits), rtol=0, atol=1e-12)


@pytest.mark.parametrize("bits", [8, 6, 4])
def test_grid_properties(bits):
    w = torch.randn(32, 300, generator=torch.Generator().manual_seed(0))
    q = quantize_rows(w, bits)
    s = row_scale(w, bits)
    for row in q:
        assert row.unique().numel() <= 2**bits
    codes = q / s
    assert torch.allclose(codes, codes.round(), atol=1e-4)
    assert codes.abs().max() <= qmax(bits) + 1e-4
    assert ((q - w).abs() <= s / 2 + 1e-6).all()
    assert torch.equal(quantize_rows(q, bits), q) or torch.allclose(quantize_rows(q, bits), q, atol=1e-7)


def test_hand_computed_int4_row():
    # qmax = 7, scale = 0.875 / 7 = 0.125 exactly; codes 7, -3.5, 0.5, 1.5, 0
    # round half-to-even -> 7, -4, 0, 2, 0
    w = torch.tensor([[0.875, -0.4375, 0.0625, 0.1875, 0.0]])
    expected = torch.tensor([[0.875, -0.5, 0.0, 0.25, 0.0]])
    assert torch.equal(quantize_rows(w, 4), expected)


def test_zero_row_stays_zero():
    w = torch.zeros(3, 8)
    assert torch.equal(quantize_rows(w, 6), w)


def test_ste_gradient_is_incoming_gradient():
    w = torch.randn(8, 12, requires_grad=True)
    upstream = torch.randn(8, 12)
    fake_quant(w, 4).backward(upstream)
    assert torch.equal(w.grad, upstream)


def test_qatlinear_uses_quantised_weight_and_fp16_is_identity():
    torch.manual_seed(0)
    lin = QATLinear(10, 6, bits=6)
    x = torch.randn(4, 10)
    assert torch.allclose(lin(x), x @ quantize_rows(lin.weight, 6).T, atol=1e-6)
    fp = QATLinear(10, 6, bits=16)
    assert torch.equal(fp(x), torch.nn.functional.linear(x, fp.weight))
    with pytest.raises(ValueError, match="bits must be one of"):
        QATLinear(4, 4, bits=5)
