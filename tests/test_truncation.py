"""--truncation head|tail|head+tail: exactly which tokens are kept, for GPT-2's BPE and a
Hugging Face tokenizer, with special tokens where the model expects them."""

from __future__ import annotations

import numpy as np
import pandas as pd

from sentibench.cli import main
from sentibench.models.truncation import Truncation
from sentibench.run.results import read_results
from sentibench.serve.predict import predict_proba
from tests.helpers import write_tiny_encoder_dir


def test_keep_takes_the_first_the_last_or_both_ends():
    ids = list(range(10))
    assert Truncation("head").keep(ids, 4) == [0, 1, 2, 3]
    assert Truncation("tail").keep(ids, 4) == [6, 7, 8, 9]
    assert Truncation("head+tail", 1).keep(ids, 4) == [0, 7, 8, 9]
    assert Truncation("head+tail").keep(ids, 8) == [0, 1, 4, 5, 6, 7, 8, 9]  # a quarter
    assert Truncation("tail").keep(ids[:3], 4) == [0, 1, 2]  # short texts are untouched


def test_gpt2_bpe_keeps_the_chosen_tokens(gpt2_bpe_dir):
    from sentibench.models.gpt2_tokenizer import tokenizer_from_dir

    tokenizer = tokenizer_from_dir(gpt2_bpe_dir)
    text = " ".join(f"word{i}" for i in range(60))
    full = tokenizer.encode_batch([text])[0]
    assert len(full) > 40
    assert tokenizer.encode_batch([text], 20)[0] == full[:20]
    assert tokenizer.encode_batch([text], 20, Truncation("tail"))[0] == full[-20:]
    assert tokenizer.encode_batch([text], 20, Truncation("head+tail", 5))[0] == \
        full[:5] + full[-15:]


def test_hf_tokenizer_keeps_special_tokens_around_the_chosen_tokens(tmp_path):
    from sentibench.models.encoders import HFTokenizer

    words = [f"w{i}" for i in range(30)]
    directory = write_tiny_encoder_dir(tmp_path / "enc", "bert", words)
    from transformers import AutoTokenizer

    tokenizer = HFTokenizer(AutoTokenizer.from_pretrained(directory), str(directory))
    text = " ".join(words)
    content = [5 + i for i in range(30)]  # w0..w29 are ids 5..34; [CLS] 2, [SEP] 3
    assert tokenizer.encode_batch([text], 10)[0] == [2, *content[:8], 3]
    assert tokenizer.encode_batch([text], 10, Truncation("tail"))[0] == [2, *content[-8:], 3]
    assert tokenizer.encode_batch([text], 10, Truncation("head+tail", 3))[0] == [
        2, *content[:3], *content[-5:], 3]


def test_tail_truncation_sees_a_verdict_at_the_end(tmp_path):
    """Each text's class word is its last word, after 30 fillers: at 16 tokens, only the
    tail keeps it."""
    rng = np.random.default_rng(0)
    data = tmp_path / "data"
    data.mkdir()
    for split, n in (("train", 160), ("validation", 40), ("test", 40)):
        labels = rng.integers(0, 2, n)
        texts = [" ".join([*rng.choice(["the", "a", "so"], 30), ("good", "bad")[y]])
                 for y in labels]
        pd.DataFrame({"text": texts, "label": labels}).to_csv(data / f"{split}.csv",
                                                              index=False)
    model = write_tiny_encoder_dir(tmp_path / "enc", "bert", ["the", "a", "so", "good", "bad"])
    accuracy = {}
    for cut in ("head", "tail"):
        out = tmp_path / cut
        assert main(["train-hf", "--model", str(model), "--num_epochs", "6", "--learning_rate",
                     "1e-3", "--max-length", "16", "--truncation", cut, "--data-dir",
                     str(data), "--out", str(out), "--device", "cpu"]) == 0
        accuracy[cut] = read_results(out).accuracy["test"]
        saved = pd.read_csv(out / "test_predictions.csv")
        texts = pd.read_csv(data / "test.csv")["text"].tolist()[:8]
        np.testing.assert_allclose(predict_proba(out, texts)[:, 1],  # predict cuts alike
                                   saved["prob_positive"][:8], atol=1e-5)
    assert accuracy["tail"] > 0.9 and accuracy["head"] < 0.75
