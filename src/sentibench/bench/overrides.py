"""What a user asks a bench to change, read from the command line: ``--set ROW.KEY=VALUE``,
``--config FILE.toml`` and ``--seeds``. Light: no torch."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from sentibench.core.errors import SentibenchError
from sentibench.engine.config import DEFAULT_SEED, SEED_LIMIT


def parse_overrides(items: list[str]) -> dict[str, dict[str, str]]:
    """``ROW.KEY=VALUE`` strings -> {row: {key: value}}."""
    out: dict[str, dict[str, str]] = {}
    for item in items:
        target, sep, value = item.partition("=")
        row, dot, key = target.rpartition(".")
        if not sep or not dot or not row or not key:
            raise SentibenchError(f"--set {item!r}: expected MODEL.KEY=VALUE")
        out.setdefault(row, {})[key] = value
    return out


def load_override_file(path: Path) -> dict[str, dict[str, Any]]:
    """A TOML file with one table per model: ``[gpt2-small]`` ``num_epochs = 2``."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SentibenchError(f"{path}: override file not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SentibenchError(f"{path}: not valid TOML ({exc})") from None
    bad = [k for k, v in raw.items() if not isinstance(v, dict)]
    if bad:
        raise SentibenchError(f"{path}: top-level key {bad[0]!r} must be a [model] table")
    return raw


MAX_SEEDS = 1000  # runs per row: more is a typo, not a plan (10^20 would fill memory)


def parse_seeds(text: str) -> list[int]:
    """``3`` -> three seeds from the default (123, 124, 125); ``1,2,5`` -> those seeds.

    At most :data:`MAX_SEEDS`, each in ``0 <= seed < 2**32``: checked before any list is
    made, so a huge count is an error at once rather than a process that grows without
    bound."""
    usage = f"--seeds {text!r}: a count (3) or a list of seeds (123,124,125)"
    try:
        values = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SentibenchError(usage) from None
    if len(values) == 1 and "," not in text:
        if values[0] < 1:
            raise SentibenchError(f"--seeds {text!r}: at least one seed")
        if values[0] > MAX_SEEDS:
            raise SentibenchError(f"--seeds {text!r}: at most {MAX_SEEDS} seeds per row")
        return [DEFAULT_SEED + i for i in range(values[0])]
    if not values or len(set(values)) != len(values):
        raise SentibenchError(f"--seeds {text!r}: distinct seeds, e.g. 123,124,125")
    if len(values) > MAX_SEEDS:
        raise SentibenchError(f"--seeds {text!r}: at most {MAX_SEEDS} seeds per row")
    wild = [v for v in values if not 0 <= v < SEED_LIMIT]
    if wild:
        raise SentibenchError(f"--seeds {text!r}: seed {wild[0]} is outside 0 to "
                              f"{SEED_LIMIT - 1} (numpy's seed range)")
    return values
