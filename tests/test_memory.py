"""The memory model (qatgrid.memory) against what autograd really saves, and micro-batching."""

from __future__ import annotations

import weakref

import pytest
import torch

from qatgrid.memory import (
    GIB,
    Shapes,
    micro_batch_options,
    micro_batches_needed,
    per_token_layer_bytes,
    saved_activation_bytes,
    shapes,
    step_memory,
)
from qatgrid.model import GPT, ModelConfig, count_params
from qatgrid.sizes import SIZES

VOCAB = 1024


class _Held:
    """What the pack hook hands autograd: alive exactly as long as the graph keeps the tensor."""

    __slots__ = ("t", "__weakref__")

    def __init__(self, t):
        self.t = t


def measured_saved_bytes(n_layer: int, d_model: int, batch: int, seq: int, bits: int, amp: bool) -> int:
    """Bytes of the distinct storages autograd holds for backward at the end of a forward (the
    parameters' own storages excluded: they exist anyway); tensors saved by a graph that is freed
    during the forward (the fake quantiser's detached branch) are not held and not counted."""
    torch.manual_seed(0)
    model = GPT(ModelConfig(vocab_size=VOCAB, n_layer=n_layer, d_model=d_model, seq_len=seq, bits=bits))
    own = {t.untyped_storage().data_ptr() for t in [*model.parameters(), *model.buffers()]}
    held = []

    def pack(t):
        h = _Held(t)
        held.append(weakref.ref(h))
        return h

    xy = torch.randint(0, VOCAB, (2, batch, seq))  # inputs and targets as train_batch makes them
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda h: h.t):
        with torch.autocast("cpu", torch.bfloat16, enabled=amp):
            loss = model(xy[0], xy[1])
    storages = {}
    for ref in held:
        h = ref()
        if h is not None and h.t.untyped_storage().data_ptr() not in own:
            storages[h.t.untyped_storage().data_ptr()] = h.t.untyped_storage().nbytes()
    del loss
    return sum(storages.values())


@pytest.mark.parametrize("d_model", [64, 128, 256])
@pytest.mark.parametrize("n_layer", [2, 3])
@pytest.mark.parametrize("precision", ["fp32", "bf16-cpu"])
def test_saved_activations_match_the_model_within_5_percent(d_model, n_layer, precision):
    """1, 2 and 4 heads (grouped-query from 2 on), even and odd depth (the U-Net skip), INT6 and FP16."""
    batch, seq = 3, 40
    for bits in (6, 16):
        measured = measured_saved_bytes(n_layer, d_model, batch, seq, bits, amp=precision != "fp32")
        modelled = saved_activation_bytes(Shapes(n_layer, d_model, VOCAB), VOCAB, batch * seq, seq, bits, precision)
        rel = modelled / measured - 1
        print(f"{precision} L={n_layer} d={d_model} bits={bits}: measured {measured} modelled {modelled} ({rel:+.2%})")
        assert abs(rel) <= 0.05, (measured, modelled)


def test_per_layer_bytes_scale_with_tokens_as_modelled():
    """The per-token, per-layer term alone: the difference of two depths at two batch sizes."""
    seq, d = 40, 128
    for precision, amp in (("fp32", False), ("bf16-cpu", True)):
        per_layer = [
            measured_saved_bytes(3, d, b, seq, 16, amp) - measured_saved_bytes(2, d, b, seq, 16, amp) for b in (2, 4)
        ]
        per_token_layer = (per_layer[1] - per_layer[0]) / (2 * seq)
        modelled = per_token_layer_bytes(Shapes(3, d, VOCAB), precision)
        print(f"{precision}: {per_token_layer / d:.2f} bytes per token x width per layer measured, "
              f"{modelled / d:.2f} modelled")  # fmt: skip
        assert per_token_layer == pytest.approx(modelled, rel=0.01)


def test_parameter_counts_are_the_models():
    for size in ("0.1M", "3M", "15M", "100M"):
        model = GPT(ModelConfig.from_size(size, vocab_size=VOCAB, seq_len=16))
        assert sum(shapes(size, VOCAB).params().values()) == count_params(model)


def test_micro_batch_options_keep_spans_whole():
    assert micro_batch_options(64, 8) == [1, 2, 4, 8, 16, 32, 64]
    assert micro_batch_options(12, 3) == [1, 3, 6, 12]
    assert micro_batch_options(6, 1) == [1, 2, 3, 6]


def test_paper_sizes_on_an_80_gb_gpu():
    """350M does not fit an 80 GB GPU at the paper's 64 x 1024 in one piece; 100M does."""
    fit = {
        size: micro_batches_needed(size, VOCAB, 64, 1024, 6, 79.0 * GIB, spans=8)
        for size in ("3M", "15M", "100M", "250M", "350M")
    }
    assert fit["3M"] == fit["15M"] == fit["100M"] == 1
    assert fit["350M"] >= 2
    whole = step_memory("350M", VOCAB, 64, 1024, 6)
    assert whole.total > 79 * GIB
    assert step_memory("350M", VOCAB, 64, 1024, 6, micro_batches=fit["350M"]).total <= 79 * GIB


def test_a_size_that_never_fits_is_named():
    with pytest.raises(ValueError, match=r"size 350M: a step does not fit 4\.0 GiB"):
        micro_batches_needed("350M", VOCAB, 64, 1024, 6, 4 * GIB)


def test_every_size_has_shapes():
    for size in SIZES:
        assert step_memory(size, VOCAB, 8, 64, 6).total > 0


def test_a_packed_run_plans_for_its_share_of_the_gpu():
    """K = 8 runs of a packed size share one 79 GiB GPU: each plans for 79 / 8 GiB. At the paper's
    64 x 1024 a whole 5M step (12.4 GiB) is over that share, so it takes more micro-batches than
    alone, and the eight together then fit the GPU; alone (K = 1) it trains in one piece."""
    from qatgrid.memory import check_pack_memory, plan_micro_batches, runs_per_gpu
    from qatgrid.runs import Run

    train = {"batch_size": 64, "seq_len": 1024, "micro_batches": "auto", "gpu_memory_gib": 79.0,
             "stream_spans": 8, "precision": "auto"}  # fmt: skip
    run = Run("p", 6, "5M", 0.33, 1.0, 0)
    assert runs_per_gpu("5M", ["3M", "5M"], 8) == 8 and runs_per_gpu("15M", ["3M", "5M"], 8) == 1
    assert plan_micro_batches(train, run, VOCAB) == 1
    k = plan_micro_batches(train, run, VOCAB, runs_per_gpu=8)
    assert k == micro_batches_needed("5M", VOCAB, 64, 1024, 6, 79.0 * GIB / 8, spans=8) == 2
    whole, split = step_memory("5M", VOCAB, 64, 1024, 6), step_memory("5M", VOCAB, 64, 1024, 6, micro_batches=k)
    assert 8 * whole.total > 79 * GIB  # eight whole-batch 5M runs would not fit
    assert check_pack_memory("5M", split.total, 8, 79 * GIB) <= 1.0
    with pytest.raises(ValueError, match=r"8 packed runs of 5M need .* more than the pack's GPU has"):
        check_pack_memory("5M", whole.total, 8, 79 * GIB)
    # a share no count fits names the packing settings
    with pytest.raises(ValueError, match=r"size 5M: a step does not fit 0\.6 GiB.*resources\.pack_runs"):
        plan_micro_batches({**train, "gpu_memory_gib": 5.0}, run, VOCAB, runs_per_gpu=8)


def test_train_config_plans_packed_sizes_from_the_resources_section():
    """TrainConfig.plan, the one decision: resources.pack_sizes / pack_runs reach it, and a fixed
    count (what a training job is given) is used as it is, whatever the packing."""
    from conftest import merged_config

    from qatgrid.config import TrainConfig
    from qatgrid.runs import Run

    paper = merged_config("paper.yaml")
    tc = TrainConfig.from_config(paper)
    assert (tc.pack_sizes, tc.pack_runs) == (("3M", "5M", "8M"), 8)
    k = {size: tc.plan(Run("p", 6, size, 0.33, 1.0, 0)).micro_batches for size in ("3M", "5M", "8M", "10M")}
    assert k == {"3M": 1, "5M": 2, "8M": 2, "10M": 1}
    alone = TrainConfig.from_config({**paper, "resources": {**paper["resources"], "pack_runs": 1}})
    assert alone.plan(Run("p", 6, "5M", 0.33, 1.0, 0)).micro_batches == 1
    fixed = TrainConfig.from_config({"train": {**paper["train"], "micro_batches": 4, "gpu_memory_gib": None}})
    assert fixed.plan(Run("p", 6, "5M", 0.33, 1.0, 0)).micro_batches == 4
