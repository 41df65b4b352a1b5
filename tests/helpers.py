"""Helpers shared by several test modules: archives, prepare, tiny models and synthetic splits.

Plain functions and classes; the fixtures built on them live in tests/conftest.py.
"""

from __future__ import annotations

import io
import os
import random
import tarfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from sentibench.cli import main
from sentibench.data.config import PrepareConfig
from sentibench.data.imdb import prepare
from sentibench.data.splits import SPLIT_FILES
from sentibench.engine.batching import EncodedSplit
from sentibench.engine.training import Engine, TrainConfig
from sentibench.models.encoders import HFClassifier
from sentibench.models.gpt2 import GPTConfig

# --- the real offline inputs and synthetic archives -----------------------------------

ARCHIVE_NAME = "aclImdb_v1_labeled.tar.gz"
ARCHIVE_SHA256 = "5d353f2ab077a6e69a4c95ec0828b5cd91144664d43fc13139d1a71ed3e6b258"


def shared_data_dir() -> Path:
    default = Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return Path(os.environ.get("SENTIBENCH_SHARED_DATA") or default)


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


# --- preparing small archives ---------------------------------------------------------

CSVS = tuple(SPLIT_FILES.values())
OUTPUTS = (*CSVS, "labels.json")  # what a prepared directory holds besides its manifest
SMALL = {"train_size": 20, "validation_size": 8}  # 48 reviews: 20 / 8 / 20


def small_members(per_folder: int = 12) -> dict[str, str | bytes]:
    """fake_reviews plus the cases where a careless re-implementation would differ:
    names sorting as strings ("10_7" < "2_7"), CRLF / CR, quotes, commas, non-ASCII."""
    members: dict[str, str | bytes] = dict(fake_reviews(per_folder))
    members["aclImdb/train/pos/3_7.txt"] = 'Says "wow", twice,\r\nthen\rstops. Café ☺  '
    members["aclImdb/test/neg/5_2.txt"] = "Line one\n\nline two, with a comma\n"
    return members


def shuffled(members: dict, seed: int = 0) -> dict:
    items = list(members.items())
    random.Random(seed).shuffle(items)
    return dict(items)


def csv_bytes(data_dir: Path) -> dict[str, bytes]:
    return {name: (data_dir / name).read_bytes() for name in CSVS}


def contents(path: Path) -> list[str]:
    """Everything in a folder, hidden temporary files included."""
    return sorted(p.name for p in path.iterdir()) if path.exists() else []


def prepare_quiet(capsys, **kwargs) -> tuple[dict, str]:
    """``prepare`` with these PrepareConfig fields: its manifest and what it printed."""
    manifest = prepare(PrepareConfig(**kwargs))
    return manifest, capsys.readouterr().out


def cli_error(capsys, argv: list[str]) -> str:
    """Run the CLI expecting a one-line error (exit status 2); that line."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.startswith(f"sentibench {argv[0]}: error: ")
    assert captured.err.count("\n") == 1
    assert "Traceback" not in captured.err
    return captured.err


# --- the engine: a tiny model that honours its contract, and synthetic splits -------------

class MeanPoolClassifier(nn.Module):
    """Embedding + masked mean + linear: padding-invariant when the mask is honoured."""

    def __init__(self, vocab: int = 32, dim: int = 16, fixed_padding: bool = False) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.head = nn.Linear(dim, 2)
        self.pad_id = 0
        self.fixed_padding = fixed_padding
        self.seen_widths: list[int] = []
        self.train_shapes: list[tuple[int, int]] = []  # [rows, width] of training forwards

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        self.seen_widths.append(input_ids.shape[1])
        if self.training:
            self.train_shapes.append(tuple(input_ids.shape))
        h = self.embed(input_ids) * attention_mask.unsqueeze(-1)
        return self.head(h.sum(1) / attention_mask.sum(1, keepdim=True))


def synthetic_split(n: int, seed: int) -> EncodedSplit:
    """Label 1 reviews use tokens 10-19, label 0 tokens 20-29; lengths vary 3-12."""
    g = torch.Generator().manual_seed(seed)
    ids, labels = [], []
    for _ in range(n):
        label = int(torch.randint(0, 2, (1,), generator=g))
        length = int(torch.randint(3, 13, (1,), generator=g))
        low = 10 if label else 20
        ids.append(torch.randint(low, low + 10, (length,), generator=g).tolist())
        labels.append(label)
    return EncodedSplit(ids, torch.tensor(labels))


def quiet_engine(model: nn.Module, **overrides) -> tuple[Engine, list[str]]:
    """An Engine on CPU (max_length 12) whose log lines are collected instead of printed."""
    lines: list[str] = []
    cfg = TrainConfig(**{"learning_rate": 1e-2, "eval_freq": 5, "eval_iter": 2,
                         "device": "cpu", **overrides})
    return Engine(model, cfg, max_length=12, log=lines.append), lines


@dataclass(frozen=True)
class TrainedRun:
    """What :func:`trained_run` leaves behind."""

    engine: Engine
    test_logits: torch.Tensor  # of synthetic_split(30, 3), after training
    params: dict[str, torch.Tensor]  # every parameter after training, by name
    log_lines: list[str]
    train_shapes: list[tuple[int, int]]  # [rows, width] of every training forward


def trained_run(**cfg) -> TrainedRun:
    """Two epochs of a MeanPoolClassifier on 64 synthetic rows from seed 0 (``cfg`` overrides
    TrainConfig fields)."""
    train, val, test = synthetic_split(64, 1), synthetic_split(16, 2), synthetic_split(30, 3)
    torch.manual_seed(0)
    model = MeanPoolClassifier()
    engine, lines = quiet_engine(model, **{"num_epochs": 2, **cfg})
    engine.fit(train, val)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    return TrainedRun(engine=engine, test_logits=engine.predict_logits(test), params=params,
                      log_lines=lines, train_shapes=model.train_shapes)


# --- our GPT-2 -------------------------------------------------------------------------

def tiny_gpt2_config(**overrides) -> GPTConfig:
    return GPTConfig(**{"emb_dim": 32, "n_layers": 2, "n_heads": 4, "vocab_size": 64,
                        "context_length": 32, **overrides})


# --- Hugging Face encoders ---------------------------------------------------------------

ENCODER_VOCAB = 100
ENCODER_LOW_ID = 5  # ids below this are special/padding tokens in every tiny encoder config


def tiny_encoder_config(arch: str):
    """hidden 32, 2 layers, 2 heads, FFN 40: small enough to train a step in milliseconds."""
    import transformers as tf

    common = dict(vocab_size=ENCODER_VOCAB, num_labels=2)
    if arch == "bert":
        return tf.BertConfig(**common, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                             intermediate_size=40, max_position_embeddings=64, type_vocab_size=2,
                             pad_token_id=0)
    if arch == "distilbert":
        return tf.DistilBertConfig(**common, dim=32, n_layers=2, n_heads=2, hidden_dim=40,
                                   max_position_embeddings=64, pad_token_id=0)
    if arch == "roberta":
        return tf.RobertaConfig(**common, hidden_size=32, num_hidden_layers=2,
                                num_attention_heads=2, intermediate_size=40,
                                max_position_embeddings=66, type_vocab_size=1, pad_token_id=1,
                                bos_token_id=0, eos_token_id=2)
    if arch == "deberta-v2":
        return tf.DebertaV2Config(**common, hidden_size=32, num_hidden_layers=2,
                                  num_attention_heads=2, intermediate_size=40,
                                  max_position_embeddings=64, relative_attention=True,
                                  position_buckets=8, norm_rel_ebd="layer_norm",
                                  share_att_key=True, pos_att_type=["p2c", "c2p"],
                                  position_biased_input=False, type_vocab_size=0,
                                  pooler_hidden_size=32, pad_token_id=0)
    if arch == "modernbert":
        return tf.ModernBertConfig(**common, hidden_size=32, intermediate_size=40,
                                   num_hidden_layers=2, num_attention_heads=2,
                                   max_position_embeddings=64, global_attn_every_n_layers=2,
                                   local_attention=8, classifier_pooling="mean", pad_token_id=0,
                                   bos_token_id=2, eos_token_id=3, cls_token_id=2,
                                   sep_token_id=3)
    raise AssertionError(arch)


def tiny_classifier(arch: str, use_attention_mask: bool = True, seed: int = 0) -> HFClassifier:
    """A randomly initialised tiny encoder of this architecture, wrapped as HFClassifier."""
    from transformers import AutoModelForSequenceClassification

    torch.manual_seed(seed)
    config = tiny_encoder_config(arch)
    hf_model = AutoModelForSequenceClassification.from_config(config)
    return HFClassifier(hf_model, pad_id=config.pad_token_id,
                        use_attention_mask=use_attention_mask)


def random_split(n: int, seed: int, low: int = 3, high: int = 13) -> EncodedSplit:
    """Rows of ENCODER_LOW_ID..ENCODER_VOCAB-1 ids, lengths low..high-1; label = parity of
    the first id."""
    g = torch.Generator().manual_seed(seed)
    ids = [torch.randint(ENCODER_LOW_ID, ENCODER_VOCAB,
                         (int(torch.randint(low, high, (1,), generator=g)),),
                         generator=g).tolist() for _ in range(n)]
    return EncodedSplit(ids, torch.tensor([row[0] % 2 for row in ids]))


def snapshot(model: HFClassifier) -> dict[str, torch.Tensor]:
    """A copy of every parameter of the wrapped Hugging Face model, by name."""
    return {name: p.detach().clone() for name, p in model.hf_model.named_parameters()}


def synthetic_csvs(directory: Path, rows: tuple[int, int, int] = (320, 60, 100),
                   seed: int = 0) -> Path:
    """Clearly separable 'reviews' (praise vs complaint words among shuffled fillers) as a
    prepared data directory with ``rows`` train / validation / test rows."""
    rng = np.random.default_rng(seed)
    good, bad = ["great", "superb", "wonderful", "moving"], ["awful", "boring", "dull", "weak"]
    filler = ["the", "film", "plot", "actor", "scene", "was", "and", "a", "it", "story"]
    directory.mkdir(parents=True)
    for split, count in zip(("train", "validation", "test"), rows, strict=True):
        labels = rng.integers(0, 2, count)
        texts = [" ".join(rng.choice(filler + (good if y else bad), 12)) + "."
                 for y in labels]
        pd.DataFrame({"text": texts, "label": labels}).to_csv(directory / f"{split}.csv",
                                                              index=False)
    return directory


def first_word_csvs(directory: Path, rows: tuple[int, int, int], cues: tuple[str, str],
                    fillers: int, seed: int = 0) -> Path:
    """A prepared data directory whose label is told by the first word alone (``cues[label]``),
    followed by ``fillers`` words drawn from 'the', 'a', 'so' (the vocabulary of
    :data:`FIRST_WORD_VOCAB`)."""
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True)
    for split, count in zip(("train", "validation", "test"), rows, strict=True):
        labels = rng.integers(0, 2, count)
        texts = [" ".join([cues[y], *rng.choice(["the", "a", "so"], fillers)]) for y in labels]
        pd.DataFrame({"text": texts, "label": labels}).to_csv(directory / f"{split}.csv",
                                                              index=False)
    return directory


FIRST_WORD_VOCAB = ["the", "a", "so", "good", "bad"]


def write_tiny_encoder_dir(directory: Path, arch: str, words: list[str]) -> Path:
    """A 'pretrained' tiny encoder of ``arch`` (random weights, no head) in the Hub layout,
    with an uncased WordPiece vocabulary of ``words`` (every family reads it as a BERT
    tokenizer; ids 0-4 are the special tokens)."""
    import json

    from transformers import AutoModel

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]
    assert len(vocab) <= ENCODER_VOCAB
    directory.mkdir(parents=True)
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 64,
         "pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]",
         "sep_token": "[SEP]", "mask_token": "[MASK]"}))
    _wordpiece_json(vocab).save(str(directory / "tokenizer.json"))  # the backend, built here
    torch.manual_seed(1)
    AutoModel.from_config(tiny_encoder_config(arch)).save_pretrained(directory)
    return directory


def _wordpiece_json(vocab: list[str]):
    """A BERT-style ``tokenizers`` WordPiece tokenizer over ``vocab`` ([CLS] text [SEP])."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordPiece

    tokenizer = Tokenizer(WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.BertNormalizer(lowercase=True)
    tokenizer.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tokenizer.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]",
        special_tokens=[("[CLS]", vocab.index("[CLS]")), ("[SEP]", vocab.index("[SEP]"))])
    return tokenizer


def noisy_three_classes(directory: Path) -> Path:
    """Two noisy cue words per class, so the three baselines differ on validation."""
    import json

    rng = np.random.default_rng(0)
    directory.mkdir()
    cues = [["apple", "pear"], ["river", "lake"], ["red", "blue"]]
    for split, n in (("train", 120), ("validation", 60), ("test", 60)):
        labels = rng.integers(0, 3, n)
        texts = [" ".join([rng.choice(cues[y]) if rng.random() < 0.6 else
                           rng.choice(sum(cues, [])), "the", "a", str(i % 7)])
                 for i, y in enumerate(labels)]
        pd.DataFrame({"text": texts, "label": labels}).to_csv(directory / f"{split}.csv",
                                                              index=False)
    (directory / "labels.json").write_text(json.dumps({"names": ["a", "b", "c"]}))
    return directory


def noisy_bench(tmp_path: Path) -> Path:
    """A finished bench of the three baselines on :func:`noisy_three_classes`, plus the
    ensemble of the two best on validation."""
    out = tmp_path / "bench"
    assert main(["bench", "--models", "dummy,logreg,logreg-tfidf", "--data-dir",
                 str(noisy_three_classes(tmp_path / "data")), "--out", str(out),
                 "--ensemble", "2"]) == 0
    return out


def train_gpt_argv(model: Path, data: Path, out: Path, *extra: str) -> list[str]:
    """``train-gpt`` on a local (tiny) GPT-2, all layers trained, on the CPU."""
    return ["train-gpt", "--model_size", str(model), "--trainable_layers", "all",
            "--data-dir", str(data), "--out", str(out), "--device", "cpu", *extra]


def train_tiny_encoder_run(base: Path, rows: tuple[int, int, int] = (96, 16, 24),
                           epochs: int = 3) -> tuple[Path, Path]:
    """A tiny encoder fine-tuned by ``train-hf`` on texts told by their first word (what
    serving and export tests score): (its run directory, its data directory)."""
    from sentibench.cli import main

    data = first_word_csvs(base / "data", rows, ("bad", "good"), 12)
    model = write_tiny_encoder_dir(base / "enc", "bert", FIRST_WORD_VOCAB)
    run = base / "encoder"
    assert main(["train-hf", "--model", str(model), "--max-length", "16", "--num_epochs",
                 str(epochs), "--learning_rate", "5e-3", "--data-dir", str(data), "--out",
                 str(run), "--device", "cpu"]) == 0
    return run, data
