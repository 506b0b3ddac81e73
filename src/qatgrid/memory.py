"""GPU memory of one training step, from the model's real shapes; and how many micro-batches a
step needs to fit a GPU. Torch-free: the audit and the plan import it at Snakemake parse time.

A step holds, at its peak (the start of the backward pass):
    weights       fp32 master weights, 4 bytes x N
    grads         fp32 gradients, 4 bytes x N (they persist across micro-batches)
    optimizer     Muon: one fp32 momentum buffer per block matrix; Adam: two fp32 moments for
                  the embedding and control tensors; the AdamW arm: two moments for every parameter
    weight copies what the matmuls saved for backward: under bf16 autocast a bf16 copy of every
                  block matrix and of the tied head; in fp32 the fake-quantised copy of each block
                  matrix (a QAT arm; FP16's matmuls save the parameter itself)
    activations   the tensors autograd saved for backward, per token and layer (`layer_tensors`),
                  plus the embedding, x0, the last encoder output and the final norm
    logits        the saved logit tensors: the soft-capped logits (sigmoid's result) and
                  log-softmax's result, both fp32 under the soft-cap: 8 bytes x vocab per token
    workspace     what backward allocates on top: the logits' gradients (two fp32 vocab-wide
                  tensors per token) and one layer's gradients at a time (bounded by that layer's
                  saved tensors); fp32 attention with grouped-query heads also keeps k/v expanded
                  to every query head (the math kernel is the fallback otherwise)
    allowance     ALLOWANCE_FIXED_GIB for the CUDA context, cuBLAS/cuDNN workspaces and the
                  compile runtime (none of which torch.cuda.max_memory_allocated sees) plus
                  ALLOWANCE_FRACTION of the tensors for the caching allocator's fragmentation

The saved-activation list follows the forward of qatgrid.model operation by operation; the
tensor each entry names is one autograd keeps (tests/test_memory.py checks the totals against
the bytes saved-tensor hooks measure, fp32 eager and CPU bf16 autocast, within 5%). Under bf16
autocast the residual stream stays fp32 (the per-channel fp32 scales promote each branch back),
the matmuls' inputs are cast to bf16 once per matmul, and rms_norm differs by device: CPU
autocast leaves it in the input's dtype (it upcasts internally, saving the fp32 upcast), CUDA
autocast runs it in fp32 (its fp32 op list), so q and k stay fp32 through RoPE and the q gain.
This is eager; Inductor's partitioner recomputes cheap pointwise ops in backward and saves less
(the decision of k is conservative by that margin on a compiled GPU run).
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from .sizes import SIZES, head_counts

GIB = 2**30
PRECISIONS = ("fp32", "bf16-cuda", "bf16-cpu")
ALLOWANCE_FIXED_GIB = 2.0
ALLOWANCE_FRACTION = 0.05


@dataclass(frozen=True)
class Shapes:
    """The widths qatgrid.model.ModelConfig derives from a size."""

    n_layer: int
    d_model: int
    vocab_size: int

    @property
    def n_head(self) -> int:
        return head_counts(self.d_model)[0]

    @property
    def n_kv_head(self) -> int:
        return head_counts(self.d_model)[1]

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_head

    @property
    def d_q(self) -> int:
        return self.n_head * self.head_dim

    @property
    def d_kv(self) -> int:
        return self.n_kv_head * self.head_dim

    @property
    def n_skip(self) -> int:
        return min(self.n_layer // 2, self.n_layer - self.n_layer // 2)

    def layer_matrices(self) -> int:
        """Block-matrix parameters of one layer: q, k, v, proj, MLP up (2x) and down."""
        d = self.d_model
        return d * self.d_q + 2 * d * self.d_kv + self.d_q * d + 2 * d * (2 * d)

    def layer_control(self) -> int:
        """attn_scale, mlp_scale, resid_mix (2 rows) and q_gain of one layer."""
        return 4 * self.d_model + self.n_head

    def params(self) -> dict[str, int]:
        """Parameters by optimiser group (qatgrid.optim.split_params): matrices, control, embed."""
        return {
            "matrices": self.n_layer * self.layer_matrices(),
            "control": self.n_layer * self.layer_control() + self.n_skip * self.d_model,
            "embed": self.vocab_size * self.d_model,
        }


def shapes(size: str, vocab_size: int) -> Shapes:
    if size not in SIZES:
        raise KeyError(f"unknown model size {size!r}; known sizes: {', '.join(SIZES)}")
    n_layer, d_model = SIZES[size]
    return Shapes(n_layer, d_model, vocab_size)


def check_precision(precision: str) -> None:
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")


def layer_tensors(s: Shapes, precision: str) -> list[tuple[str, float]]:
    """(tensor, bytes per token) that one block saves for backward, in forward order. The block's
    input (the residual stream, fp32) is counted here; the first block's input is x0 (global)."""
    check_precision(precision)
    d, dq, dkv, h, kv = s.d_model, s.d_q, s.d_kv, s.n_head, s.n_kv_head
    f = 4  # fp32: the residual stream, norms' statistics, the attention's logsumexp
    a = 4 if precision == "fp32" else 2  # the matmuls' (autocast) dtype
    casts = 1 if precision == "fp32" else 3  # autocast casts the normed x once per q/k/v matmul
    # q and k after their rms_norm: fp32 on CUDA autocast (fp32 op list), else the matmul's dtype
    qk = f if precision == "bf16-cuda" else a
    # what rms_norm saves of q / k: the input itself (fp32, or fp32 on CUDA autocast), or on CPU
    # autocast the fp32 upcast its decomposition makes
    qk_in = f
    return [
        ("block input x (residual)", f * d),
        ("x mixed with x0 (rms_norm input)", f * d),
        ("rms_norm statistic", f),
        ("normed x (q/k/v matmul input)", casts * a * d),
        ("q (rms_norm input)", qk_in * dq),
        ("q rms_norm statistics", f * h),
        ("k (rms_norm input)", qk_in * dkv),
        ("k rms_norm statistics", f * kv),
        ("q after RoPE (q-gain input)", qk * dq),
        ("attention query (q x gain)", a * dq),
        ("attention key (k after RoPE)", a * dkv),
        ("attention value", a * dkv),
        ("attention output", a * dq),
        ("attention logsumexp", f * h),
        # one head: (B, 1, T, hd) -> (B, T, hd) is a view of the output, no copy
        ("heads merged (proj input)", a * dq if h > 1 else 0),
        ("proj output (attn_scale input)", a * d),
        ("x after attention (rms_norm input)", f * d),
        ("rms_norm statistic", f),
        ("normed x (MLP up input)", a * d),
        ("relu(up x)", a * 2 * d),
        ("relu(up x)^2 (down input)", a * 2 * d),
        ("down output (mlp_scale input)", a * d),
    ]


def layer_constant_bytes(s: Shapes, seq_len: int, precision: str) -> int:
    """Per-layer saved bytes that do not scale with the batch: CPU autocast casts the RoPE tables
    (cos and sin, seq_len x head_dim/2 each) to bf16 for q and for k."""
    return 4 * seq_len * (s.head_dim // 2) * 2 if precision == "bf16-cpu" else 0


def per_token_layer_bytes(s: Shapes, precision: str) -> float:
    return sum(b for _, b in layer_tensors(s, precision))


def global_tensors(s: Shapes, precision: str) -> list[tuple[str, float]]:
    """Saved bytes per token outside the blocks, logits apart."""
    a = 4 if precision == "fp32" else 2
    d = s.d_model
    return [
        ("embedding output (rms_norm input)", 4 * d),
        ("x0", 4 * d),
        ("last encoder output (U-Net skip)", 4 * d if s.n_skip else 0),
        ("last block output (final rms_norm input)", 4 * d),
        ("final rms_norm statistic", 4),
        ("normed x (head matmul input)", a * d),
        ("inputs and targets (int64)", 16),
    ]


def logits_bytes_per_token(s: Shapes) -> int:
    """Soft-capped logits (sigmoid's saved result) and log-softmax's result, fp32 under the soft-cap."""
    return 2 * 4 * s.vocab_size


def weight_copy_bytes(s: Shapes, bits: int, precision: str) -> int:
    p = s.params()
    if precision == "fp32":
        return 4 * p["matrices"] if bits < 16 else 0
    return 2 * (p["matrices"] + p["embed"])


def saved_activation_bytes(
    size_or_shapes: str | Shapes, vocab_size: int, tokens: int, seq_len: int, bits: int, precision: str
) -> int:
    """Everything autograd holds for backward at the end of a forward of `tokens` tokens:
    activations, logits and weight copies (what saved-tensor hooks measure)."""
    s = size_or_shapes if isinstance(size_or_shapes, Shapes) else shapes(size_or_shapes, vocab_size)
    return (
        activation_bytes(s, tokens, seq_len, precision)
        + tokens * logits_bytes_per_token(s)
        + weight_copy_bytes(s, bits, precision)
    )


def activation_bytes(s: Shapes, tokens: int, seq_len: int, precision: str) -> int:
    layer = per_token_layer_bytes(s, precision)
    first_input = layer_tensors(s, precision)[0][1]  # the first block's input is x0
    per_token = s.n_layer * layer - first_input + sum(b for _, b in global_tensors(s, precision))
    return int(tokens * per_token) + s.n_layer * layer_constant_bytes(s, seq_len, precision)


def optimizer_bytes(s: Shapes, optimizer: str) -> int:
    p = s.params()
    if optimizer == "adamw":
        return 8 * sum(p.values())
    return 4 * p["matrices"] + 8 * (p["control"] + p["embed"])


@dataclass(frozen=True)
class StepMemory:
    """Bytes of one training step at its peak, by part (module docstring)."""

    weights: int
    grads: int
    optimizer: int
    weight_copies: int
    activations: int
    logits: int
    workspace: int
    allowance: int

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))

    def gib(self) -> dict[str, float]:
        return {**{f.name: getattr(self, f.name) / GIB for f in fields(self)}, "total": self.total / GIB}


def step_memory(
    size: str,
    vocab_size: int,
    batch_size: int,
    seq_len: int,
    bits: int,
    optimizer: str = "muon",
    precision: str = "bf16-cuda",
    micro_batches: int = 1,
) -> StepMemory:
    """The peak memory of one step of `batch_size` x `seq_len` tokens in `micro_batches` micro-batches."""
    check_precision(precision)
    s = shapes(size, vocab_size)
    n = sum(s.params().values())
    tokens = batch_size // micro_batches * seq_len
    layer = int(tokens * per_token_layer_bytes(s, precision))
    gqa_expand = 2 * 4 * s.d_q * tokens * s.n_layer if precision == "fp32" and s.n_kv_head < s.n_head else 0
    tensors = dict(
        weights=4 * n,
        grads=4 * n,
        optimizer=optimizer_bytes(s, optimizer),
        weight_copies=weight_copy_bytes(s, bits, precision),
        activations=activation_bytes(s, tokens, seq_len, precision),
        logits=tokens * logits_bytes_per_token(s),
        workspace=tokens * logits_bytes_per_token(s) + layer + gqa_expand,
    )
    allowance = int(ALLOWANCE_FIXED_GIB * GIB + ALLOWANCE_FRACTION * sum(tensors.values()))
    return StepMemory(**tensors, allowance=allowance)


def micro_batch_options(batch_size: int, spans: int = 1) -> list[int]:
    """Micro-batch counts a step may use: divisors k of the batch with whole spans per micro-batch
    or whole micro-batches per span (k divides `spans` or `spans` divides k). The step's rows, and
    so its data, are the same for every k; only how many go through the model at once changes."""
    return [k for k in range(1, batch_size + 1) if batch_size % k == 0 and (spans % k == 0 or k % spans == 0)]


def micro_batches_needed(
    size: str,
    vocab_size: int,
    batch_size: int,
    seq_len: int,
    bits: int,
    gpu_memory_bytes: float,
    optimizer: str = "muon",
    precision: str = "bf16-cuda",
    spans: int = 1,
) -> int:
    """The fewest micro-batches (micro_batch_options) whose step fits `gpu_memory_bytes`."""
    for k in micro_batch_options(batch_size, spans):
        if step_memory(size, vocab_size, batch_size, seq_len, bits, optimizer, precision, k).total <= gpu_memory_bytes:
            return k
    one = step_memory(size, vocab_size, batch_size, seq_len, bits, optimizer, precision, batch_size)
    raise ValueError(
        f"size {size}: a step does not fit {gpu_memory_bytes / GIB:.1f} GiB of GPU memory even one sequence "
        f"at a time ({batch_size} micro-batches of 1 x {seq_len} tokens: {one.total / GIB:.1f} GiB modelled); "
        "use a GPU with more memory (train.gpu_memory_gib) or a shorter train.seq_len"
    )


def train_precision(train: dict) -> str:
    """The memory model's precision for a GPU run under train.precision (auto: bf16 on CUDA)."""
    return "fp32" if train.get("precision", "auto") == "fp32" else "bf16-cuda"


def runs_per_gpu(size: str, pack_sizes, pack_runs: int) -> int:
    """How many runs of `size` share one GPU: resources.pack_runs for a size in resources.pack_sizes
    (on a cluster, the profile's `group-components: pack=K` packs them into one GPU job), else 1."""
    return pack_runs if size in pack_sizes else 1


def check_pack_memory(size: str, bytes_per_run: float, pack: int, gpu_bytes: float) -> float:
    """Packed runs (resources.pack_sizes; `group-components: pack=K` in profiles/slurm) share one
    GPU's memory: K runs of `size` need K x bytes_per_run. Raises ValueError naming the setting to
    change when that exceeds the GPU's `gpu_bytes`; returns the share of the GPU the pack takes."""
    need = pack * bytes_per_run
    if need > gpu_bytes:
        raise ValueError(
            f"{pack} packed runs of {size} need {need / 2**30:.1f} GiB of GPU memory "
            f"({bytes_per_run / 2**30:.2f} GiB each), more than the pack's GPU has ({gpu_bytes / 2**30:.1f} GiB): "
            f"lower `group-components: pack=` in the profile or take {size} out of resources.pack_sizes"
        )
    return need / gpu_bytes


def plan_micro_batches(train: dict, run, vocab_size: int | None, runs_per_gpu: int = 1) -> int:
    """A run's micro-batches per step, the one decision training and the audit read (through
    qatgrid.config.TrainConfig.plan): train.micro_batches if an integer (it must divide the run's
    batch), else (auto) the fewest that fit the run's share of train.gpu_memory_gib, the whole GPU
    or, with `runs_per_gpu` K runs packed on it, 1/K of it (null or 0: the whole batch at once, as
    on CPU)."""
    from .schedule import run_batch_size

    batch_size = run_batch_size(train, run)
    chosen, memory = train["micro_batches"], train["gpu_memory_gib"]
    if chosen != "auto":
        if isinstance(chosen, bool) or not isinstance(chosen, int) or chosen < 1 or batch_size % chosen:
            raise ValueError(
                f"train.micro_batches ({chosen!r}) must be 'auto' or a count dividing the batch size ({batch_size})"
            )
        return chosen
    if not memory:
        return 1
    if vocab_size is None:
        raise ValueError("train.gpu_memory_gib is set but the vocabulary size (data.vocab_size) is unknown")
    try:
        return micro_batches_needed(
            run.size, vocab_size, batch_size, train["seq_len"], run.bits, memory * GIB / runs_per_gpu, run.optimizer,
            train_precision(train), train["stream_spans"],
        )  # fmt: skip
    except ValueError as e:
        if runs_per_gpu == 1:
            raise
        raise ValueError(f"{e}; here {runs_per_gpu} packed runs share the GPU (resources.pack_runs, "
                         f"resources.pack_sizes): pack fewer or take {run.size} out of the pack") from None  # fmt: skip
