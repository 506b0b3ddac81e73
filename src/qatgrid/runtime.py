"""Device and runtime set-up of a training process: which device, which precision, compile or
not, CPU threads and allocator, the compile cache. Nothing here changes what a CPU run computes."""

from __future__ import annotations

import ctypes
import os
import sys
from pathlib import Path

import torch


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def fast_path(
    device: torch.device, precision: str = "auto", compile_: str | bool = "auto"
) -> tuple[torch.dtype | None, bool]:
    """(autocast dtype or None, compile?) for this device. On CUDA the default is bf16 autocast
    and torch.compile of the model (quantiser included, so fake quantisation fuses into the
    kernels); on CPU it is float32 eager, so CPU results never depend on this switch."""
    on_gpu = device.type == "cuda"
    dtype = torch.bfloat16 if precision == "bf16" or (precision == "auto" and on_gpu) else None
    return dtype, compile_ is True or (compile_ == "auto" and on_gpu)


# glibc mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD_BYTES = 32 << 20  # mallopt(3)'s upper limit on 64-bit; buffers above it still get their own mmap
TRIM_THRESHOLD_BYTES = 1 << 30


def keep_freed_memory() -> bool:
    """Make glibc keep freed blocks in the heap for reuse instead of handing them back to the kernel.

    By default glibc serves a large allocation (a CPU step's logits are 4 MiB) with a fresh mmap
    and unmaps it on free, and trims the heap's top as soon as it is free: every step then faults
    its activations in again as new zeroed pages. With two CPU-miniature runs side by side (as
    `snakemake --cores 2` runs them) a 100-step run took 370k-560k minor page faults and 1.3-1.4x the
    time it takes with this set (16k-22k faults; benchmarks/bench_allocator.py). Peak memory is
    unchanged: freed blocks are reused, not added. Returns whether it applied (glibc only)."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (AttributeError, OSError):  # not glibc (macOS, Windows)
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES)) and bool(
        mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD_BYTES)
    )


def setup_device(device: torch.device, threads: int) -> None:
    """The job's `threads` on every device: torch's intra-op threads (on CPU part of what makes runs
    reproducible; on CUDA the host-side work, so that the metrics' `threads` is what the job had)
    and Inductor's compile workers (limit_compile_threads). CPU: an allocator that keeps freed
    memory. CUDA: TF32 matmuls."""
    torch.set_num_threads(threads)
    limit_compile_threads(threads)
    if device.type == "cpu":
        keep_freed_memory()
    else:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True


def limit_compile_threads(threads: int) -> int:
    """Inductor compiles with a pool of min(32, CPUs) worker processes in every compiling process,
    even when its cache is warm: eight packed runs on one node would start ~128 of them, against
    their allocation of 8 x `threads` CPUs. Cap the pool at the job's threads, before the first
    compile (Inductor reads TORCHINDUCTOR_COMPILE_THREADS when its config is first imported, so the
    setting goes to the loaded config too). A value the environment already sets (a site's, or a
    benchmark's) is kept. Returns the limit in force. Compiled code does not depend on it."""
    limit = int(os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", str(max(1, threads))))
    config = sys.modules.get("torch._inductor.config")
    if config is not None:
        config.compile_threads = limit
    return limit


def use_compile_cache(cache_dir: str | Path | None) -> None:
    """Point Inductor's on-disk caches (FX graphs, AOTAutograd, autotuning, Triton kernels) at
    `cache_dir`, a folder every run of the grid shares, instead of the node-local /tmp default:
    then only the first run of each shape compiles from nothing. Inductor reads the variable
    whenever it resolves its cache folder (not at import), so setting it before the first
    compiled call is enough; its writes are atomic, so concurrent jobs may share the folder.
    None leaves Inductor's default."""
    if cache_dir:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(Path(cache_dir).resolve())


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype, enabled=dtype is not None)


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
