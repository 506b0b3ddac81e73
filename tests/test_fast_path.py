"""The fast GPU path's switches, and its compiled bf16 step checked against eager on CPU
(inductor compiles for CPU too, so the traced model and fake quantiser are exercised here)."""

import torch

from qatgrid.model import ModelConfig
from qatgrid.runtime import fast_path
from qatgrid.train import build_trainer, train_step

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_fast_path_defaults_and_overrides():
    assert fast_path(CPU) == (None, False)  # CPU stays float32 eager: results never change
    assert fast_path(CUDA) == (torch.bfloat16, True)
    assert fast_path(CUDA, "fp32", False) == (None, False)
    assert fast_path(CPU, "bf16", True) == (torch.bfloat16, True)


def losses(compiled: bool, steps: int = 4) -> list[float]:
    torch.manual_seed(0)
    mcfg = ModelConfig.from_size("0.1M", vocab_size=300, seq_len=32, bits=6, logit_softcap=30.0)
    _, forward, params, optimizers = build_trainer(
        mcfg, CPU, compiled, "muon", {"muon": 0.02, "embed": 0.01, "scalar": 0.02, "adamw": 0.003}, 1.0, 0.0
    )
    g = torch.Generator().manual_seed(1)
    x, y = (torch.randint(0, 300, (4, 32), generator=g) for _ in range(2))
    return [train_step(forward, params, optimizers, x, y, torch.bfloat16, 1.0).item() for _ in range(steps)]


def test_compiled_bf16_qat_step_tracks_eager():
    eager, compiled = losses(False), losses(True)
    assert eager[-1] < eager[0] - 1.0  # the same batch again and again: it must be learned
    assert abs(compiled[0] - eager[0]) < 1e-3  # same weights, same batch: only kernel order differs
    assert max(abs(c - e) for c, e in zip(compiled, eager)) < 0.02  # bf16 drift over a few steps
