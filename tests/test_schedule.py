import math

import pytest

from qatgrid.schedule import lr_multiplier, warmdown_start


def test_linear_boundaries():
    total, warm = 100, 10
    assert lr_multiplier(0, total, warm, 0.33) == pytest.approx(0.1)
    assert lr_multiplier(9, total, warm, 0.33) == 1.0
    assert warmdown_start(total, 0.33) == 67
    assert lr_multiplier(66, total, warm, 0.33) == 1.0
    assert lr_multiplier(67, total, warm, 0.33) == 1.0  # first warmdown step: progress 0
    assert lr_multiplier(67 + 11, total, warm, 0.33) == pytest.approx(1 - 11 / 33)
    assert lr_multiplier(99, total, warm, 0.33) == pytest.approx(1 / 33)


def test_cosine_boundaries():
    total = 200
    start = warmdown_start(total, 0.5)
    assert lr_multiplier(start, total, 0, 0.5, "cosine") == 1.0
    assert lr_multiplier(start + 50, total, 0, 0.5, "cosine") == pytest.approx(0.5)
    assert lr_multiplier(start + 25, total, 0, 0.5, "cosine") == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))


def test_monotone_decay_and_bad_shape():
    m = [lr_multiplier(s, 50, 5, 0.4) for s in range(50)]
    assert all(a >= b for a, b in zip(m[5:], m[6:]))
    with pytest.raises(ValueError, match="schedule shape must be one of"):
        lr_multiplier(0, 10, 0, 0.5, "step")
