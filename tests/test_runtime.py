"""qatgrid.runtime: a job's threads on every device, Inductor's compile workers limited to them,
and the memory check of packed runs."""

import os
import sys

import pytest
import torch

from qatgrid import memory, runtime
from qatgrid.model import GPT, ModelConfig


@pytest.fixture
def restore_threads(monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_COMPILE_THREADS", raising=False)
    saved = torch.get_num_threads(), torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    config = sys.modules.get("torch._inductor.config")
    compile_threads = getattr(config, "compile_threads", None)
    yield
    torch.set_num_threads(saved[0])
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved[1:]
    if config is not None:
        config.compile_threads = compile_threads


def test_threads_are_honoured_on_cuda_too(restore_threads):
    """A CUDA job's torch threads and Inductor compile workers are its `threads` (packed jobs
    share a node's CPUs), as on CPU; TF32 stays on. torch.device("cuda") needs no GPU here."""
    import torch._inductor.config as inductor_config

    runtime.setup_device(torch.device("cuda"), 3)
    assert torch.get_num_threads() == 3
    assert inductor_config.compile_threads == 3
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    assert os.environ["TORCHINDUCTOR_COMPILE_THREADS"] == "3"


def test_a_compile_thread_setting_of_the_environment_is_kept(restore_threads, monkeypatch):
    monkeypatch.setenv("TORCHINDUCTOR_COMPILE_THREADS", "5")
    assert runtime.limit_compile_threads(2) == 5
    import torch._inductor.config as inductor_config

    assert inductor_config.compile_threads == 5


def test_cpu_set_up_computes_bitwise_what_it_did(restore_threads):
    """On CPU setup_device does what it always did (threads, glibc's allocator) and a training
    step's loss and gradients are bitwise those of the previous set-up (set_num_threads and
    keep_freed_memory alone)."""

    def step(setup):
        setup()
        torch.manual_seed(0)
        model = GPT(ModelConfig.from_size("0.25M", vocab_size=64, seq_len=16, bits=6))
        x = torch.randint(0, 64, (2, 2, 16))
        loss = model(x[0], x[1])
        loss.backward()
        return [loss.detach(), *(p.grad for p in model.parameters() if p.grad is not None)]

    def before():
        torch.set_num_threads(1)
        runtime.keep_freed_memory()

    now = step(lambda: runtime.setup_device(torch.device("cpu"), 1))
    assert torch.get_num_threads() == 1
    then = step(before)
    assert len(now) > 5 and all(torch.equal(a, b) for a, b in zip(now, then, strict=True))


def test_packed_runs_must_fit_the_gpu_together():
    gib = 2**30
    # 8 runs of 9 GiB = 72 GiB: 90% of an 80 GiB GPU; 10 GiB each (80 GiB) just fits; 11 does not.
    assert memory.check_pack_memory("8M", 9 * gib, 8, 80 * gib) == pytest.approx(0.9)
    assert memory.check_pack_memory("8M", 10 * gib, 8, 80 * gib) == pytest.approx(1.0)
    with pytest.raises(ValueError, match=r"8 packed runs of 8M need 88.0 GiB .* \(80.0 GiB\).*pack_sizes"):
        memory.check_pack_memory("8M", 11 * gib, 8, 80 * gib)
