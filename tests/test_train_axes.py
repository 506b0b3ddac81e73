"""Training on the new axes: data order apart from the init seed, batch size with its steps and LR, ternary."""

import math

from test_train import TRAIN, data_dir, train  # noqa: F401 (data_dir is a fixture)

from qatgrid.runs import Run


def losses(m):
    return [e["train_loss"] for e in m["curve"]]


def test_off_the_data_axis_every_init_seed_reads_one_stream_a_data_seed_reorders_it(data_dir, tmp_path):
    plain = train(data_dir, tmp_path, Run("p", 6, "0.1M", 0.25, 1.0, 0), "plain")
    seed1 = train(data_dir, tmp_path, Run("p", 6, "0.1M", 0.25, 1.0, 1), "seed1")
    other = train(data_dir, tmp_path, Run("p", 6, "0.1M", 0.25, 1.0, 0, data_seed=1), "other")
    assert plain["data_seed"] is None and other["data_seed"] == 1 and other["seed"] == 0
    assert losses(other) != losses(plain) and losses(seed1) != losses(plain)  # the init seed still matters
    # Only the init seed differs between plain and seed1: same batches (tests/test_stream.py), other weights.


def test_random_batches_keep_the_data_seed_defaulting_to_the_init_seed(data_dir, tmp_path):
    plain = train(data_dir, tmp_path, Run("p", 6, "0.1M", 0.25, 1.0, 0), "plain", batches="random")
    same = train(data_dir, tmp_path, Run("p", 6, "0.1M", 0.25, 1.0, 0, data_seed=0), "same", batches="random")
    stream = train(data_dir, tmp_path, Run("p", 6, "0.1M", 0.25, 1.0, 0), "stream")
    assert losses(plain) == losses(same) and losses(plain) != losses(stream)


def test_batch_size_axis_holds_tokens_and_scales_lr(data_dir, tmp_path):
    m = train(data_dir, tmp_path, Run("p", 6, "0.1M", 0.25, 1.0, 0, batch_size=8), "bs8")
    assert m["batch_size"] == 8 and m["steps"] == 12 and m["tokens"] == 24 * 4 * 32
    assert m["hold_tokens"] is True and m["lr_batch_rule"] == "sqrt"
    assert m["lr"] == TRAIN["lr"]["muon"] * math.sqrt(2)
    free = train(
        data_dir,
        tmp_path,
        Run("p", 6, "0.1M", 0.25, 1.0, 0, batch_size=8),
        "free",
        hold_tokens=False,
        lr_batch_rule="hold",
    )
    assert free["steps"] == 24 and free["tokens"] == 24 * 8 * 32 and free["lr"] == TRAIN["lr"]["muon"]
    base = train(data_dir, tmp_path, Run("p", 6, "0.1M", 0.25, 1.0, 0), "base")
    assert base["batch_size"] == 4 and base["lr"] == TRAIN["lr"]["muon"]


def test_ternary_run_trains(data_dir, tmp_path):
    m = train(data_dir, tmp_path, Run("p", 1, "0.1M", 0.25, 1.0, 0), "ternary")
    assert m["bits"] == 1 and m["run_id"] == "p/ternary/0.1M/wd25/lr1x/muon-linear-x1/seed0"
    assert not m["diverged"] and m["final_val_loss"] < math.log(300)
