import pytest
import torch

from qatgrid.probe import grid_distance, probe_weights
from qatgrid.quant import quantize_rows


def test_on_grid_weights_have_zero_distance():
    w = quantize_rows(torch.randn(8, 64), 6)
    assert grid_distance(w, 6).max() < 1e-4


def test_hand_computed_distance():
    # int4: qmax 7, scale 0.125; codes 7, 2.25, -0.5, 1.1 -> distances 0, 0.25, 0.5, 0.1
    w = torch.tensor([[0.875, 0.28125, -0.0625, 0.1375]])
    assert torch.allclose(grid_distance(w, 4), torch.tensor([[0.0, 0.25, 0.5, 0.1]]), atol=1e-6)


def test_uniform_weights_average_a_quarter_step():
    w = torch.rand(64, 4096, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert abs(grid_distance(w, 6).mean().item() - 0.25) < 0.005


def test_probe_weights_covers_block_matrices_only():
    state = {
        "embed.weight": torch.randn(10, 8),
        "blocks.0.mlp.up.weight": torch.randn(16, 8),
        "blocks.0.mlp.down.weight": torch.zeros(8, 16),  # never-trained zero rows are skipped
        "blocks.0.resid_mix": torch.randn(2, 8),
        "skip_weights": torch.randn(1, 8),
    }  # fp32 control tensors
    out = probe_weights(state, 6)
    assert list(out["layers"]) == ["blocks.0.mlp.up.weight"]
    assert out["n_weights"] == 128
    assert 0 <= out["mean_distance"] <= 0.5


def test_probe_checkpoint_has_every_grid_and_the_table_picks_one(tmp_path):
    import json

    from qatgrid.aggregate import load_probes
    from qatgrid.probe import PROBE_GRIDS, probe_checkpoint

    state = {"blocks.0.mlp.up.weight": quantize_rows(torch.randn(16, 8), 4)}
    torch.save(
        {"model": state, "run_id": "phase2/int4/15M/wd33/lr1x/muon-linear-x1/seed0", "bits": 4, "size": "15M"},
        tmp_path / "ckpt.pt",
    )
    probe = probe_checkpoint(str(tmp_path / "ckpt.pt"))
    assert set(probe["grids"]) == {str(b) for b in PROBE_GRIDS} and "4" in probe["grids"]
    assert probe["grids"]["4"]["mean_distance"] < 1e-5  # INT4 weights sit on the INT4 grid
    assert probe["grids"]["6"]["mean_distance"] > 0.01  # and off the finer INT6 grid
    (tmp_path / "probe.json").write_text(json.dumps(probe))
    table = load_probes([str(tmp_path / "probe.json")], 6)
    assert table.loc[0, "grid_bits"] == 6 and table.loc[0, "mean_distance"] == probe["grids"]["6"]["mean_distance"]
    with pytest.raises(ValueError, match="no distance to the INT5 grid"):
        load_probes([str(tmp_path / "probe.json")], 5)
