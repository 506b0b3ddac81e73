"""The parameter-golf baseline's published, pre-tokenised FineWeb export.

Files sit in a Hugging Face dataset repo under a root prefix:
``<root>/datasets/fineweb10B_<variant>/fineweb_{train,val}_NNNNNN.bin`` and the
SentencePiece model ``<root>/<tokenizer>``. They are fetched once, where Snakemake
runs (a local rule), with `hf_hub_download` (resumable, cached in the hub cache),
copied into the data folder on the shared filesystem, and every shard header is
validated. Training jobs read that folder only and never touch the hub.
`repo_id` may also name a local folder with the same layout (a mirror); `root: ""` (or ".")
reads a mirror whose top holds `datasets/` and `tokenizers/`.
"""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path

from ..io import atomic_path
from . import check_vocab, data_files, finish_folder, source_settings
from .bpb import sentencepiece_luts, sentencepiece_token_bytes
from .shards import read_header

log = logging.getLogger(__name__)


def remote_files(s: dict, files: dict) -> dict[str, str]:
    """Local file name -> path inside the repo. A root of "" or "." is the repo's top."""
    root = s["root"].strip("/")
    prefix = "" if root in ("", ".") else f"{root}/"
    shards = f"{prefix}datasets/fineweb10B_{s['variant']}"
    remote = {name: f"{shards}/{name}" for name in files["train"] + files["val"]}
    remote[files["tokenizer"]] = f"{prefix}{s['tokenizer']}"
    return remote


def mirror_folder(repo_id: str) -> Path | None:
    """The local mirror `repo_id` names, or None for a hub repo. An existing folder is a mirror; a
    repo_id that looks like a path (absolute, or starting with ./, ../ or ~) but is no folder is an
    error naming it, raised before anything touches the network."""
    path = Path(repo_id).expanduser()
    if path.is_dir():
        return path
    if path.is_absolute() or repo_id in (".", "..") or repo_id.startswith(("./", "../", "~")):
        raise FileNotFoundError(
            f"data.parameter_golf.repo_id: {repo_id} names a local mirror, but the folder {path} does not exist"
        )
    return None


def fetch(repo_id: str, mirror: Path | None, filename: str, dest: Path) -> None:
    """One file from the local mirror folder, or else the hub, to `dest`, atomically."""
    if mirror is not None:
        src = mirror / filename
        if not src.is_file():
            raise FileNotFoundError(f"data.parameter_golf.repo_id: {src} is missing from the local mirror")
    else:
        from huggingface_hub import hf_hub_download

        sub, _, name = filename.rpartition("/")
        src = Path(hf_hub_download(repo_id=repo_id, filename=name, subfolder=sub or None, repo_type="dataset"))
    with atomic_path(dest) as tmp:
        shutil.copyfile(src.resolve(), tmp)


def download(data_cfg: dict, out_dir: str) -> dict:
    """Fetch what is not already in `out_dir`, validate every shard, write byte counts and meta."""
    s, files, out = source_settings(data_cfg), data_files(data_cfg), Path(out_dir)
    mirror = mirror_folder(s["repo_id"])
    for name, remote in remote_files(s, files).items():
        dest = out / name
        if dest.is_file() and (name == files["tokenizer"] or _valid(dest)):
            continue  # resumable: a finished file is kept; a partial one never got its final name
        log.info("fetching %s:%s", s["repo_id"], remote)
        fetch(s["repo_id"], mirror, remote, dest)
        if name != files["tokenizer"]:
            try:
                read_header(dest)  # raises naming the file and what is wrong
            except ValueError as e:
                dest.unlink()  # never left where a later run would take it for complete
                raise type(e)(f"{e} [fetched from {s['repo_id']}:{remote}]") from None
    tok_path = out / files["tokenizer"]
    luts = sentencepiece_luts(str(tok_path))
    check_vocab(len(luts[0]), data_cfg, tok_path)
    return finish_folder(data_cfg, out, tok_path, lambda val: sentencepiece_token_bytes(val, luts), {})


def _valid(path: Path) -> bool:
    try:
        read_header(path)
        return True
    except ValueError:
        os.unlink(path)  # a foreign or damaged file is fetched again
        return False
