"""Sliding windows: they cover every token within the model's length, special tokens in
each; their logits average per review; short reviews score as without windows."""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from sentibench.core.errors import SentibenchError
from sentibench.engine.config import TrainConfig
from sentibench.engine.windows import (
    average_logits,
    default_stride,
    encode_windows,
    window_starts,
)
from sentibench.run.neural import final_logits
from tests.helpers import MeanPoolClassifier, quiet_engine, write_tiny_encoder_dir

WORDS = ["good", "bad", "film", "plot", "the", "a", "was", "and"]


class _Words:
    """No special tokens: 'good' -> 10, 'bad' -> 20, other words -> 5 (as GPT-2's BPE,
    which adds none)."""

    name, pad_id = "words", 0

    def encode_batch(self, texts, max_length):
        table = {"good": 10, "bad": 20}
        return [[table.get(w, 5) for w in t.split()][:max_length] for t in texts]


@pytest.fixture(scope="module")
def bert_tokenizer(tmp_path_factory):
    from transformers import AutoTokenizer

    from sentibench.models.hf_tokenizer import HFTokenizer

    directory = write_tiny_encoder_dir(tmp_path_factory.mktemp("enc") / "bert", "bert", WORDS)
    return HFTokenizer(AutoTokenizer.from_pretrained(str(directory)))


@pytest.mark.parametrize("size", [1, 2, 5, 8])
def test_windows_cover_every_token_within_the_size(size):
    for stride in range(1, size + 1):
        for length in range(0, 30):
            starts = window_starts(length, size, stride)
            covered = set()
            for first in starts:
                window = range(first, min(first + size, length))
                assert len(window) <= size
                covered |= set(window)
            assert covered == set(range(length)), (length, size, stride)
            assert starts == sorted(set(starts)) and starts[0] == 0
            assert max(starts) + size >= length


def test_hf_windows_keep_cls_and_sep_in_each_and_cover_the_whole_text(bert_tokenizer):
    text = " ".join(WORDS * 5)  # 40 words, one token each
    full = bert_tokenizer.encode_batch([text], None)[0]
    cls_sep = full[0], full[-1]
    content = full[1:-1]
    assert len(content) == 40
    windowed = encode_windows(bert_tokenizer, [text, "good film"], [1, 0], max_length=12,
                              stride=7)
    ids, owner = windowed.split.ids, windowed.owner.tolist()
    first_review = [w for w, o in zip(ids, owner, strict=True) if o == 0]
    assert [len(w) for w in first_review] == [12] * 6  # starts 0, 7, 14, 21, 28 and 30
    for window, first in zip(first_review, [0, 7, 14, 21, 28, 30], strict=True):
        assert (window[0], window[-1]) == cls_sep
        assert window[1:-1] == content[first:first + 10]
    assert set(range(40)) == {i for f in [0, 7, 14, 21, 28, 30] for i in range(f, f + 10)}
    assert ids[owner.index(1)] == bert_tokenizer.encode_batch(["good film"], 12)[0]
    assert windowed.split.labels.tolist() == [1] * 6 + [0]
    assert default_stride(10) == 5


def test_a_stride_longer_than_the_window_is_refused(bert_tokenizer):
    with pytest.raises(SentibenchError, match="--window-stride 11 exceeds the window's 10"):
        encode_windows(bert_tokenizer, ["good film"], [1], max_length=12, stride=11)


def test_windows_without_special_tokens_are_plain_slices():
    windowed = encode_windows(_Words(), ["good bad a a good"], [1], max_length=3, stride=2)
    assert windowed.split.ids == [[10, 20, 5], [5, 5, 10]]  # starts 0 and 2 (the last)


def test_averaging_is_the_mean_of_each_reviews_windows():
    logits = torch.tensor([[1.0, 2.0], [3.0, 6.0], [5.0, -1.0], [0.5, 0.5], [2.0, 2.0]])
    owner = torch.tensor([0, 0, 2, 1, 0])
    expected = torch.tensor([[(1 + 3 + 2) / 3, (2 + 6 + 2) / 3], [0.5, 0.5], [5.0, -1.0]])
    torch.testing.assert_close(average_logits(logits, owner, 3), expected)


def _final(texts: list[str], windows: bool, max_length: int = 12) -> torch.Tensor:
    torch.manual_seed(0)
    model = MeanPoolClassifier()
    engine, _ = quiet_engine(model, eval_windows=windows)
    from sentibench.engine.batching import encode_split

    frame = pd.DataFrame({"text": texts, "label": [i % 2 for i in range(len(texts))]})
    split = encode_split(_Words(), texts, frame["label"].tolist(), max_length)
    built = type("Built", (), {"tokenizer": _Words()})()
    return final_logits(engine, built, {"test": split}, {"test": frame}, max_length,
                        engine.cfg)["test"]


def test_windows_change_nothing_for_texts_shorter_than_the_window():
    texts = ["good film", "bad bad plot", "the film was good and the plot bad"]
    torch.testing.assert_close(_final(texts, windows=True), _final(texts, windows=False))


def test_a_long_texts_evaluation_is_the_mean_over_its_windows():
    text = " ".join(["good"] * 6 + ["bad"] * 10)  # 16 tokens, windows of 12 every 6
    torch.manual_seed(0)
    model = MeanPoolClassifier()
    ids = _Words().encode_batch([text], None)[0]
    windows = [ids[0:12], ids[4:16]]  # starts 0 and 16 - 12 (the last)
    expected = torch.stack([model(torch.tensor([w]), torch.ones(1, 12, dtype=torch.long))[0]
                            for w in windows]).mean(0)
    got = _final([text], windows=True)
    torch.testing.assert_close(got[0], expected.detach())
    assert not torch.allclose(got, _final([text], windows=False))


def test_window_stride_needs_eval_windows():
    with pytest.raises(SentibenchError, match="--window-stride needs --eval-windows"):
        TrainConfig(window_stride=4)


def test_gpt2_windows_are_plain_slices_of_the_bpe_ids(gpt2_bpe_dir):
    from sentibench.models.gpt2_tokenizer import tokenizer_from_dir

    tokenizer = tokenizer_from_dir(gpt2_bpe_dir)
    text = "A slow start, then a moving and beautifully acted film. " * 4
    ids = tokenizer.encode(text)
    windowed = encode_windows(tokenizer, [text], [1], max_length=16)
    starts = window_starts(len(ids), 16, 8)
    assert len(starts) > 2
    assert windowed.split.ids == [ids[first:first + 16] for first in starts]
