"""Run orchestration: the length a run trains at, and refusing one the model cannot take."""

from __future__ import annotations

import pytest
from torch import nn

from sentibench.core.errors import SentibenchError
from sentibench.models.registry import BuiltModel
from sentibench.run.neural import resolve_max_length


class WordTokenizer:
    """One id per whitespace-separated word (only lengths matter here)."""

    name = "words"

    def encode_batch(self, texts, max_length, truncation=None):
        return [[1] * len(t.split())[:max_length] if max_length else [1] * len(t.split())
                for t in texts]


def _built(max_length: int | str, limit: int, flag: str = "--max-length",
           default: int | None = 256) -> BuiltModel:
    return BuiltModel(nn.Linear(1, 2), WordTokenizer(), max_length, limit, lambda d: None, {},
                      flag, default)


def test_a_length_within_the_limit_is_used_as_asked():
    assert resolve_max_length(_built(256, 512), ["a b c"]) == 256
    assert resolve_max_length(_built(512, 512), ["a b c"]) == 512


@pytest.mark.parametrize("flag", ["--max-length", "--context_length"])
def test_a_length_past_the_models_limit_is_an_error_naming_flag_and_limit(flag):
    with pytest.raises(SentibenchError) as info:
        resolve_max_length(_built(600, 512, flag), ["a b c"])
    message = str(info.value)
    assert message.startswith(f"{flag} 600 exceeds the 512 tokens this model accepts")
    assert "\n" not in message


def test_the_longest_training_example_is_cut_to_the_limit_with_a_note(capsys):
    texts = ["a b c", "a b c d e f g"]
    assert resolve_max_length(_built("longest_training_example", 100), texts) == 7
    assert capsys.readouterr().out == ""
    assert resolve_max_length(_built("longest_training_example", 5), texts) == 5
    assert "longest training example has 7 tokens, more than the model's 5" in \
        capsys.readouterr().out


def test_the_default_length_is_cut_to_a_smaller_models_limit_with_a_note(capsys):
    """256 (the reference's) is what a user gets without asking; a 64-token model takes 64."""
    assert resolve_max_length(_built(256, 64), ["a b c"]) == 64
    assert "the default length 256 is more than the model's 64 tokens" in capsys.readouterr().out
    with pytest.raises(SentibenchError, match="--max-length 300 exceeds"):
        resolve_max_length(_built(300, 64), ["a b c"])
