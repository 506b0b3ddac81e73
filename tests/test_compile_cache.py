"""The shared compile cache: a second training run of the same shape, in a new process, loads
its compiled graphs from the folder the config names instead of compiling them again (CPU
Inductor, the smallest model, two steps)."""

import json
import os
import subprocess
import sys

import yaml
from conftest import REPO, small_train
from snakemake.utils import validate
from test_train import data_dir  # noqa: F401 (a fixture: the shared tiny corpus)

from qatgrid.runfiles import RunFiles
from qatgrid.runs import Run

# One training run in this process, then Inductor's and AOTAutograd's cache counters on stdout.
CHILD = """
import json, sys
from torch._dynamo.utils import counters
from qatgrid.runs import Run
from qatgrid.runfiles import RunFiles
from qatgrid.train import train_run
cfg, run = json.loads(sys.argv[1]), Run("p", 6, "0.1M", 0.5, 1.0, 0)
train_run(run, cfg, sys.argv[2], RunFiles(run.id, sys.argv[3]))
print(json.dumps({k: dict(counters[k]) for k in ("inductor", "aot_autograd")}))
"""
# eval_tokens = batch_size * seq_len: evaluation sees the training batch's shape, so each run
# compiles exactly three graphs (training forward, backward, evaluation forward).
TRAIN = small_train(
    steps=2,
    warmup_steps=1,
    muon_momentum={"warmup_steps": 8},
    log_every=2,
    eval_every=2,
    eval_tokens=128,
    checkpoint_every=2,
    compile=True,
)


def train_in_new_process(workdir, data_dir, name: str) -> dict:
    # Inductor's own default (/tmp) may hold graphs from other runs: only the config may say where to look.
    env = {k: v for k, v in os.environ.items() if k != "TORCHINDUCTOR_CACHE_DIR"}
    env["PYTHONPATH"] = str(REPO / "src")
    cfg = {"train": TRAIN, "compile_cache": "cache/inductor"}  # relative: resolved in the job's working directory
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cfg), data_dir, name],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(RunFiles(Run("p", 6, "0.1M", 0.5, 1.0, 0).id, workdir / name).metrics.read_text())
    assert metrics["compiled"] is True and metrics["steps_done"] == 2
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_second_run_of_the_same_shape_hits_the_shared_cache(tmp_path, data_dir):
    first = train_in_new_process(tmp_path, data_dir, "a")
    assert first["inductor"].get("fxgraph_cache_hit", 0) == 0
    assert first["inductor"]["fxgraph_cache_miss"] == 3
    fxgraph = tmp_path / "cache" / "inductor" / "fxgraph"
    entries = [p for p in fxgraph.rglob("*") if p.is_file()]
    assert len(entries) >= 3, f"no compiled graphs written under {fxgraph}"

    second = train_in_new_process(tmp_path, data_dir, "b")
    assert second["inductor"]["fxgraph_cache_hit"] == 3
    assert second["inductor"].get("fxgraph_cache_miss", 0) == 0
    assert second["aot_autograd"]["autograd_cache_hit"] >= 1  # the joint forward/backward graph, too
    assert second["aot_autograd"].get("autograd_cache_miss", 0) == 0


def test_config_default_puts_the_cache_under_results():
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    cfg.pop("compile_cache", None)
    validate(cfg, str(REPO / "config" / "schema" / "config.schema.yaml"))
    assert cfg["compile_cache"] == "results/cache/inductor"
