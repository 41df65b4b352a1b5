"""``sentibench prepare --dataset NAME``: one preparing function per source."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from sentibench.data.config import PrepareConfig


def _imdb(cfg: PrepareConfig) -> dict:
    from sentibench.data.imdb import prepare

    return prepare(cfg)


def _sms_spam(cfg: PrepareConfig) -> dict:
    from sentibench.data.sms_spam import prepare_sms_spam

    return prepare_sms_spam(cfg)


def _files(cfg: PrepareConfig) -> dict:
    from sentibench.data.files import prepare_files

    return prepare_files(cfg)


def _hf(cfg: PrepareConfig) -> dict:
    from sentibench.data.hf_datasets import prepare_hf

    return prepare_hf(cfg)


SOURCES: dict[str, Callable[[PrepareConfig], dict]] = {
    "imdb": _imdb, "sms-spam": _sms_spam, "files": _files, "hf": _hf}


def prepare_dataset(cfg: PrepareConfig) -> dict:
    """Prepare ``cfg.dataset`` into ``cfg.data_dir`` (hf:NAME goes to the ``hf`` source)."""
    return SOURCES[cfg.dataset.split(":")[0]](cfg)


def ensure_prepared(data_dir: str | Path, dataset: str = "imdb",
                    source: str | None = None) -> Path:
    """Prepare ``dataset`` into ``data_dir`` if a split CSV is missing (used by ``bench``)."""
    from sentibench.data.splits import SPLIT_FILES

    data_dir = Path(data_dir)
    if not all((data_dir / name).is_file() for name in SPLIT_FILES.values()):
        prepare_dataset(PrepareConfig(dataset=dataset, source=source, data_dir=data_dir))
    return data_dir
