"""The correctness section of benchmarks/gpu_check.py: per bit-width, the fast path (bf16 autocast,
torch.compile) against exact fp32 eager (TF32 off) from the same initial weights on the same
batches, then, at the trained weights, the compiled step's gradients and the compiled fake quantiser.
"""

from __future__ import annotations

import contextlib
import time

from gpu_sections import Record, check, ensure_data, section_fast

# Tolerances of the correctness section (nats for losses; relative L2 norms for gradients).
TOL = {
    "first_loss": 0.02,  # same weights, same batch: bf16 rounding only
    "curve_window": 0.05,  # mean loss over each tenth of the steps (bf16 vs fp32, 0.2M on CPU, 200 steps: ≤ 0.007)
    "val_loss": 0.05,
    "grid_mean_distance": 1e-4,  # in grid steps: fp32 rounding of code * scale
    "grid_max_distance": 1e-3,
    "quantiser_mismatch": 1e-3,  # share of weights the compiled quantiser puts on another level than eager's
    "grad_vs_eager": 0.05,  # compiled vs eager, same precision
    "grad_vs_fp32": 0.10,  # compiled fast path vs exact fp32
    # compiled-vs-eager error / error of dropping the quantiser: ~0.3 expected (bf16 rounding 0.7%, the quantiser
    # 2.6% at 3M, measured on CPU); a compiled graph without its quantiser gives ~1
    "grad_vs_qat_effect": 0.75,
}

# --- correctness ------------------------------------------------------------------------------


def stream_batch_on(tokens, step: int, batch: int, seq: int, device):
    """Step `step`'s batch of the training stream (qatgrid.data.stream), as training reads it."""
    from qatgrid.config import schema_defaults
    from qatgrid.data.stream import train_batch
    from qatgrid.runs import Run

    return train_batch(tokens, schema_defaults("train"), Run("check", 6, "0.1M", 0.5, 1.0, 0), step, batch, seq, device)


@contextlib.contextmanager
def exact_fp32(device):
    """fp32 matmuls without TF32 (setup_device turns TF32 on for CUDA): the reference arm. On CUDA
    its attention must not fall back to the math kernel, which materialises every B·H·T² score
    matrix (~100 ms a 3M step at 64 × 1,024 tokens): the efficient kernels only, so that a fallback
    raises here instead of eating the section's time box (the model expands grouped key/value
    heads for fp32, which the memory-efficient kernel takes)."""
    import torch
    from torch.nn.attention import SDPBackend, sdpa_kernel

    if device.type != "cuda":
        yield
        return
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        with sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION, SDPBackend.CUDNN_ATTENTION]):
            yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def set_lr(optimizers: list, multiplier: float) -> None:
    """build_optimizers keeps each group's base LR in 'base_lr' for the schedule to scale."""
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * multiplier


def train_curve(arm: tuple, tokens, c: dict, train: dict, device, amp) -> list[float]:
    """Losses of `c['steps']` steps of one arm on the batches every arm gets, with warmup and warmdown."""
    import torch

    from qatgrid.schedule import lr_multiplier
    from qatgrid.train import train_step

    _, forward, params, optimizers = arm
    losses = []
    for step in range(c["steps"]):
        set_lr(optimizers, lr_multiplier(step, c["steps"], max(1, c["steps"] // 10), 0.33))
        x, y = stream_batch_on(tokens, step, c["batch"], c["seq"], device)
        losses.append(train_step(forward, params, optimizers, x, y, amp, train["grad_clip"]).detach())
    return torch.stack(losses).float().cpu().tolist()


def compare_curves(fast: list[float], ref: list[float], windows: int = 10) -> dict:
    n = max(1, len(fast) // windows)
    means = [(sum(fast[i : i + n]) / n, sum(ref[i : i + n]) / n) for i in range(0, len(fast) - n + 1, n)]
    return {
        "first_step_diff": abs(fast[0] - ref[0]),
        "window_diffs": [round(abs(a - b), 5) for a, b in means],
        "max_window_diff": max(abs(a - b) for a, b in means),
        "fast_first_last": [fast[0], fast[-1]],
        "ref_first_last": [ref[0], ref[-1]],
    }


def loss_and_grads(forward, model, x, y, amp) -> tuple[float, list]:
    import torch

    from qatgrid.runtime import autocast

    model.zero_grad(set_to_none=True)
    with autocast(x.device, amp):
        loss = forward(x, y)
    loss.backward()
    grads = [
        (p.grad if p.grad is not None else torch.zeros_like(p)).detach().float().flatten() for p in model.parameters()
    ]
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


def relative_error(a: list, b: list) -> float:
    import torch

    a, b = torch.cat(a), torch.cat(b)
    return float((a - b).norm() / b.norm().clamp_min(1e-30))


def gradient_check(fast: tuple, mcfg, state: dict, batch: tuple, amp) -> dict:
    """At the fast arm's trained weights, on one batch: the compiled step's gradients against an
    eager model's at the same precision and in exact fp32; for QAT, against what dropping the
    quantiser (the same weights in an FP16 model) changes, so a compiled graph that lost its
    quantiser cannot pass."""
    import dataclasses

    from qatgrid.model import GPT

    x, y = batch

    def eager(cfg):
        model = GPT(cfg).to(x.device)
        model.load_state_dict(state)
        return model

    model_c, forward_c = fast[0], fast[1]
    loss_c, g_c = loss_and_grads(forward_c, model_c, x, y, amp)
    plain = eager(mcfg)
    loss_e, g_e = loss_and_grads(plain, plain, x, y, amp)
    with exact_fp32(x.device):
        loss_r, g_r = loss_and_grads(plain, plain, x, y, None)
    out = {
        "loss_compiled": loss_c,
        "loss_eager": loss_e,
        "loss_fp32": loss_r,
        "rel_err_vs_eager": relative_error(g_c, g_e),
        "rel_err_vs_fp32": relative_error(g_c, g_r),
    }
    if mcfg.bits < 16:
        unquantised = eager(dataclasses.replace(mcfg, bits=16))
        loss_u, g_u = loss_and_grads(unquantised, unquantised, x, y, amp)
        out["qat_effect"] = relative_error(g_u, g_e)
        out["qat_effect_loss"] = abs(loss_u - loss_e)
    return out


def grid_check(model, bits: int, amp) -> dict:
    """The fake quantiser compiled (as inside the compiled model) over the trained weights: its
    output must lie on the grid (probe distance ~0, against ~0.25 for the latent weights) and put
    every weight on the level eager quantize_rows puts it."""
    import torch

    from qatgrid.probe import grid_distance, probe_grids
    from qatgrid.quant import QATLinear, fake_quant, quantize_rows
    from qatgrid.runtime import autocast

    layers = {f"{name}.weight": m.weight for name, m in model.named_modules() if isinstance(m, QATLinear)}
    weights = list(layers.values())
    quantise = torch.compile(lambda ws: [fake_quant(w, bits) for w in ws])
    with torch.no_grad(), autocast(weights[0].device, amp):
        compiled = quantise(weights)
        eager = [quantize_rows(w, bits) for w in weights]
    q = {name: t.detach().float().cpu() for name, t in zip(layers, compiled)}
    latent = {name: w.detach().float().cpu() for name, w in layers.items()}
    nonzero = [t[t.abs().amax(dim=1) > 0] for t in q.values()]
    mismatched = sum(int((a != b).sum()) for a, b in zip(compiled, eager))
    return {
        "mean_distance": probe_grids(q)[bits]["mean_distance"],
        "max_distance": max(float(grid_distance(t, bits).max()) for t in nonzero if t.numel()),
        "latent_mean_distance": probe_grids(latent)[bits]["mean_distance"],
        "mismatch_vs_eager": mismatched / sum(w.numel() for w in weights),
    }


def compare_arms(spec: dict, data: tuple, bits: int, device, amp) -> dict:
    """One bit-width: fast path and exact fp32 reference from the same weights on the same batches."""
    import torch

    from qatgrid.model import ModelConfig
    from qatgrid.train import build_trainer, evaluate

    c, train = spec["plan"], spec["train"]
    meta, train_tokens, val_tokens, _ = data
    mcfg = ModelConfig.from_size(
        c["size"], vocab_size=meta["vocab_size"], seq_len=c["seq"], bits=bits, logit_softcap=train["logit_softcap"]
    )
    torch.manual_seed(0)
    fast = build_trainer(mcfg, device, section_fast(spec)["compile"], "muon", train["lr"], 1.0, 0.0, spec["cache"])
    ref = build_trainer(mcfg, device, False, "muon", train["lr"], 1.0, 0.0)
    ref[0].load_state_dict(fast[0].state_dict())
    t0 = time.perf_counter()
    fast_losses = train_curve(fast, train_tokens, c, train, device, amp)
    t_fast = time.perf_counter() - t0
    with exact_fp32(device):
        ref_losses = train_curve(ref, train_tokens, c, train, device, None)
    out = {"curves": compare_curves(fast_losses, ref_losses), "fast_train_s": t_fast}
    eval_tokens = c["batch"] * c["seq"]
    out["val_fast"] = evaluate(fast[1], val_tokens, c["seq"], c["batch"], eval_tokens, device, amp)
    with exact_fp32(device):
        out["val_ref"] = evaluate(ref[0], val_tokens, c["seq"], c["batch"], eval_tokens, device, None)
    state = {k: v.detach().clone() for k, v in fast[0].state_dict().items()}
    batch = stream_batch_on(train_tokens, 10**6, c["batch"], c["seq"], device)  # a batch no arm trained on
    out["grads"] = gradient_check(fast, mcfg, state, batch, amp)
    if bits < 16:
        out["grid"] = grid_check(fast[0], bits, amp)
    return out


def judge_correctness(record: Record, label: str, r: dict) -> None:
    cv, g = r["curves"], r["grads"]
    check(record, f"{label} first-step loss |fast - fp32|", cv["first_step_diff"], TOL["first_loss"])
    check(record, f"{label} loss curve, max |fast - fp32| per tenth", cv["max_window_diff"], TOL["curve_window"])
    check(record, f"{label} validation loss |fast - fp32|", abs(r["val_fast"] - r["val_ref"]), TOL["val_loss"])
    check(record, f"{label} gradients, compiled vs eager (rel. L2)", g["rel_err_vs_eager"], TOL["grad_vs_eager"])
    check(record, f"{label} gradients, fast path vs exact fp32 (rel. L2)", g["rel_err_vs_fp32"], TOL["grad_vs_fp32"])
    if "qat_effect" in g:
        ratio = g["rel_err_vs_eager"] / max(g["qat_effect"], 1e-12)
        print(f"  {label} dropping the quantiser changes the gradients by {g['qat_effect']:.4f}", flush=True)
        check(record, f"{label} compiled-vs-eager error / quantiser's effect", ratio, TOL["grad_vs_qat_effect"])
    if "grid" in r:
        q = r["grid"]
        print(f"  {label} latent weights' mean distance to the grid: {q['latent_mean_distance']:.3f}", flush=True)
        check(
            record,
            f"{label} compiled fake-quantised weights, mean grid distance",
            q["mean_distance"],
            TOL["grid_mean_distance"],
        )
        check(
            record,
            f"{label} compiled fake-quantised weights, max grid distance",
            q["max_distance"],
            TOL["grid_max_distance"],
        )
        check(
            record,
            f"{label} weights on another level than eager's (share)",
            q["mismatch_vs_eager"],
            TOL["quantiser_mismatch"],
        )


def section_correctness(spec: dict, record: Record) -> None:
    """The fast path against exact fp32 eager, per bit-width: loss curves, gradients, the grid."""
    from qatgrid.data import load_data
    from qatgrid.runs import bits_label
    from qatgrid.runtime import fast_path, resolve_device, setup_device

    device = resolve_device("auto")
    setup_device(device, spec["threads"])
    fast = section_fast(spec)
    amp, compiled = fast_path(device, fast.get("precision", "auto"), fast.get("compile", "auto"))
    data = load_data(ensure_data(spec))
    c = spec["plan"]
    precision = str(amp).removeprefix("torch.") if amp is not None else "float32"
    record.update(size=c["size"], steps=c["steps"], batch=c["batch"], seq=c["seq"], precision=precision)
    record["compiled"] = compiled
    record["tolerances"] = TOL
    record["bits"] = {}
    for bits in c["bits"]:
        label = bits_label(bits)
        print(f"  {c['size']} {label}: {c['steps']} steps fast path and exact fp32, batch {c['batch']} x {c['seq']}")
        record["bits"][label] = compare_arms(spec, data, bits, device, amp)
        judge_correctness(record, label, record["bits"][label])
        record.save()
