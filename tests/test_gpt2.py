"""Our GPT-2: parity with transformers, checkpoint checks, tokenizer, freezing, pooling, saving.

Everything runs on CPU without network: checkpoints are tiny random transformers models saved
to tmp, the tokenizer comes from the shared GPT-2 BPE files (../shared/data/gpt2-tokenizer).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from pathlib import Path

import pytest
import torch
import transformers
from safetensors.torch import load_file, save_file

from sentibench.core.errors import SentibenchError
from sentibench.models import count_parameters, gpt2
from sentibench.models.gpt2 import GPT2, GPTConfig, from_pretrained, load_tokenizer
from sentibench.models.gpt2_classifier import (
    GPT2Classifier,
    load_classifier,
    save_classifier,
)
from sentibench.models.gpt2_tokenizer import TOKENIZER_DIR_ENV, tokenizer_from_dir
from tests.helpers import ARCHIVE_NAME, shared_data_dir, tiny_gpt2_config

SHAPES = [(2, 4, 64), (3, 2, 48), (1, 1, 32)]  # (n_layer, n_head, n_embd)


@pytest.fixture(autouse=True)
def _no_tokenizer_env(monkeypatch):
    monkeypatch.delenv(TOKENIZER_DIR_ENV, raising=False)


@pytest.fixture(scope="module")
def bpe_dir(gpt2_bpe_dir) -> Path:
    return gpt2_bpe_dir


@pytest.fixture(scope="module")
def tokenizer(bpe_dir):
    return tokenizer_from_dir(bpe_dir)


def hf_model(n_layer: int, n_head: int, n_embd: int, seed: int = 0) -> transformers.GPT2LMHeadModel:
    torch.manual_seed(seed)
    cfg = transformers.GPT2Config(n_layer=n_layer, n_head=n_head, n_embd=n_embd, n_positions=64,
                                  vocab_size=101, bos_token_id=100, eos_token_id=100)
    model = transformers.GPT2LMHeadModel(cfg).eval()
    with torch.no_grad():  # non-trivial LayerNorm/bias values so their mapping is exercised
        for name, p in model.named_parameters():
            if name.endswith("bias") or ".ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
    return model


def saved_hf(tmp_path: Path, shape=(2, 4, 64)) -> tuple[transformers.GPT2LMHeadModel, Path]:
    model = hf_model(*shape)
    model.save_pretrained(tmp_path / "hf")
    return model, tmp_path / "hf"


# ---------------------------------------------------------------- parity with transformers


@pytest.mark.parametrize("shape", SHAPES)
def test_logits_match_transformers(tmp_path, shape):
    hf, path = saved_hf(tmp_path, shape)
    ours = from_pretrained(path).eval()
    ids = torch.randint(0, 101, (3, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(ours(ids), hf(ids).logits, atol=1e-4, rtol=1e-4)
    assert ours.lm_head.weight is ours.wte.weight


@pytest.mark.parametrize("shape", SHAPES[:2])
def test_right_padded_batch_matches_transformers_on_real_positions(tmp_path, shape):
    hf, path = saved_hf(tmp_path, shape)
    ours = from_pretrained(path).eval()
    lengths = [20, 7, 1]
    ids = torch.full((3, 20), 100)
    mask = torch.zeros(3, 20, dtype=torch.long)
    g = torch.Generator().manual_seed(2)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(0, 100, (n,), generator=g)
        mask[row, :n] = 1
    with torch.no_grad():
        got, want = ours(ids), hf(ids, attention_mask=mask).logits
        for row, n in enumerate(lengths):
            torch.testing.assert_close(got[row, :n], want[row, :n], atol=1e-4, rtol=1e-4)
            alone = ours(ids[row : row + 1, :n])[0]
            torch.testing.assert_close(got[row, :n], alone, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("prefix", ["transformer.", ""])
def test_state_dict_with_and_without_prefix(tmp_path, prefix):
    hf, path = saved_hf(tmp_path)
    raw = load_file(path / "model.safetensors")
    state = {k.removeprefix("transformer."): v for k, v in raw.items()}
    state = {prefix + k: v.clone() for k, v in state.items()}
    state["lm_head.weight"] = state[prefix + "wte.weight"].clone()  # tied head, present
    state[prefix + "h.0.attn.bias"] = torch.ones(1, 1, 64, 64)  # legacy mask buffers: ignored
    state[prefix + "h.0.attn.masked_bias"] = torch.tensor(-1e4)
    save_file(state, path / "model.safetensors")
    ids = torch.randint(0, 101, (2, 16))
    with torch.no_grad():
        torch.testing.assert_close(from_pretrained(path)(ids), hf(ids).logits, atol=1e-4, rtol=1e-4)


def _rewrite(path: Path, edit) -> None:
    state = load_file(path / "model.safetensors")
    edit(state)
    save_file(state, path / "model.safetensors")


@pytest.mark.parametrize(
    ("edit", "needle"),
    [
        (lambda s: s.pop("transformer.h.1.mlp.c_fc.bias"), "missing keys: h.1.mlp.c_fc.bias"),
        (lambda s: s.update({"transformer.h.0.attn.foo": torch.zeros(2)}),
         "unexpected keys: h.0.attn.foo"),
        (lambda s: s.update({"transformer.h.1.attn.c_attn.weight": torch.zeros(192, 64)}),
         "h.1.attn.c_attn.weight (192, 64) != (64, 192)"),
        (lambda s: s.update({"lm_head.weight": torch.zeros(101, 64)}), "untied"),
    ],
)
def test_bad_checkpoint_names_the_key(tmp_path, edit, needle):
    _, path = saved_hf(tmp_path)
    _rewrite(path, edit)
    with pytest.raises(SentibenchError, match="checkpoint|untied") as info:
        from_pretrained(path)
    assert needle in str(info.value)
    assert "\n" not in str(info.value)


def test_missing_and_unexpected_keys_listed_together(tmp_path):
    _, path = saved_hf(tmp_path)
    _rewrite(path, lambda s: s.update(
        {"transformer.h.9.ln_1.weight": s.pop("transformer.ln_f.weight")}))
    with pytest.raises(SentibenchError) as info:
        from_pretrained(path)
    assert "missing keys: ln_f.weight" in str(info.value)
    assert "unexpected keys: h.9.ln_1.weight" in str(info.value)


def test_local_dir_without_weights_and_bad_config(tmp_path):
    _, path = saved_hf(tmp_path)
    (path / "model.safetensors").unlink()
    with pytest.raises(SentibenchError, match="no model.safetensors"):
        from_pretrained(path)
    assert isinstance(from_pretrained(path, weights="random"), GPT2)  # config alone suffices
    config = json.loads((path / "config.json").read_text())
    (path / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    with pytest.raises(SentibenchError, match="activation_function"):
        from_pretrained(path, weights="random")
    with pytest.raises(SentibenchError, match="weights"):
        from_pretrained(path, weights="openai")


# ---------------------------------------------------------------- Hub paths (offline)


def _fake_hub_cache(cache: Path, repo: str, files: dict[str, Path]) -> None:
    """The layout huggingface_hub writes: refs/main -> snapshots/<commit>/<file>."""
    root = cache / f"models--{repo.replace('/', '--')}"
    commit = "0" * 40
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(commit)
    (root / "snapshots" / commit).mkdir(parents=True)
    for name, src in files.items():
        shutil.copy(src, root / "snapshots" / commit / name)


@pytest.fixture
def offline_hub(monkeypatch, tmp_path):
    from huggingface_hub import constants

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_hub_repo_loads_from_hf_cache_offline(tmp_path, offline_hub):
    hf, path = saved_hf(tmp_path)
    files = {name: path / name for name in ("config.json", "model.safetensors")}
    _fake_hub_cache(offline_hub, "someone/tiny-gpt2", files)
    ids = torch.randint(0, 101, (2, 10))
    with torch.no_grad():
        got = from_pretrained("someone/tiny-gpt2")(ids)
    torch.testing.assert_close(got, hf(ids).logits, atol=1e-4, rtol=1e-4)


def test_unreachable_hub_suggests_a_local_dir(offline_hub):
    with pytest.raises(SentibenchError, match="unreachable.*local directory") as info:
        from_pretrained("gpt2-medium")
    assert "openai-community/gpt2-medium" in str(info.value)


def test_random_preset_needs_no_download(offline_hub):
    model = from_pretrained("gpt2-small (124M)", weights="random")
    assert count_parameters(model) == (124_439_808, 124_439_808)
    assert count_parameters(model) == (param_formula(model.config),) * 2


# ---------------------------------------------------------------- configs and sizes


@pytest.mark.parametrize(
    ("names", "dims", "repo"),
    [
        (["gpt2-small (124M)", "gpt2", "gpt2-small", "openai-community/gpt2"], (768, 12, 12),
         "openai-community/gpt2"),
        (["gpt2-medium (355M)", "gpt2-medium", "openai-community/gpt2-medium"], (1024, 24, 16),
         "openai-community/gpt2-medium"),
        (["gpt2-large (774M)", "gpt2-large", "openai-community/gpt2-large"], (1280, 36, 20),
         "openai-community/gpt2-large"),
        (["gpt2-xl (1558M)", "gpt2-xl", "openai-community/gpt2-xl"], (1600, 48, 25),
         "openai-community/gpt2-xl"),
    ],
)
def test_preset_names(names, dims, repo):
    for name in names:
        cfg = GPTConfig.from_name(name)
        assert (cfg.emb_dim, cfg.n_layers, cfg.n_heads) == dims
        assert (cfg.vocab_size, cfg.context_length, cfg.qkv_bias) == (50257, 1024, True)
        assert gpt2.hub_repo_id(name) == repo
    assert gpt2.hub_repo_id("someone/else") == "someone/else"


def test_config_validation_and_hf_config():
    with pytest.raises(SentibenchError, match="unknown GPT-2 model size"):
        GPTConfig.from_name("gpt2-huge")
    with pytest.raises(SentibenchError, match="divisible"):
        GPTConfig(emb_dim=100, n_layers=2, n_heads=3)
    with pytest.raises(SentibenchError, match="n_layers"):
        GPTConfig(emb_dim=64, n_layers=0, n_heads=4)
    hf = {"n_embd": 48, "n_layer": 3, "n_head": 2, "n_positions": 64, "vocab_size": 101}
    assert GPTConfig.from_hf_config(hf) == GPTConfig(48, 3, 2, vocab_size=101, context_length=64)
    with pytest.raises(SentibenchError, match="n_inner"):
        GPTConfig.from_hf_config({**hf, "n_inner": 100})
    with pytest.raises(SentibenchError, match="n_head"):
        GPTConfig.from_hf_config({k: v for k, v in hf.items() if k != "n_head"})


def param_formula(cfg: GPTConfig) -> int:
    """Tied GPT-2: embeddings + n_layers blocks (2 LN, qkv, proj, 4x MLP) + final LN."""
    e = cfg.emb_dim
    block = 2 * 2 * e + (3 * e * e + 3 * e) + (e * e + e) + (4 * e * e + 4 * e) + (4 * e * e + e)
    return cfg.vocab_size * e + cfg.context_length * e + cfg.n_layers * block + 2 * e


def test_parameter_count_formula_and_presets():
    tiny = tiny_gpt2_config()
    assert count_parameters(GPT2(tiny))[0] == param_formula(tiny)
    assert param_formula(GPTConfig.from_name("gpt2-small (124M)")) == 124_439_808
    assert param_formula(GPTConfig.from_name("gpt2-medium")) == 354_823_168
    assert param_formula(GPTConfig.from_name("gpt2-large")) == 774_030_080
    assert param_formula(GPTConfig.from_name("gpt2-xl")) == 1_557_611_200


def test_context_length_is_enforced():
    model = GPT2(tiny_gpt2_config(context_length=8))
    with pytest.raises(SentibenchError, match="context length 8"):
        model(torch.zeros(1, 9, dtype=torch.long))


# ---------------------------------------------------------------- tokenizer

TEXTS = [
    "Hello, world", "", " ", "   leading and trailing   ", "tabs\tand\nnewlines\r\n\n\n end",
    "I'm sure it's what they'd've said, we'll see, you're right, I've 'd 'll 's 't 're 've 'm",
    "DON'T SHOUT'S", "This movie was great!<br /><br />Really.<br />", "1234567890 3.14 1,000,000",
    "naïve café résumé Ångström Žižek", "日本語のテキストと中文字符", "emoji 🎬🍿👍🏽 ❤️",
    "supercalifragilisticexpialidocious antidisestablishmentarianism", "a" * 300,
    "mixed\u00a0nbsp\u2003em-space\u200bzero-width", "<|endoftext|> is text here",
    "Ελληνικά и русский текст", "!!!???... --- ***", "x  \t  y", "trailing newline\n",
]


def _imdb_sample(n: int = 150) -> list[str]:
    archive = shared_data_dir() / ARCHIVE_NAME
    if not archive.is_file():
        return []
    texts = []
    with tarfile.open(archive) as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".txt"):
                texts.append(tar.extractfile(member).read().decode("utf-8"))
                if len(texts) == n:
                    break
    return texts


@pytest.fixture(scope="module")
def reference_tokenizer(bpe_dir, tmp_path_factory):
    """transformers' GPT-2 BPE over the same files (renamed to HF's names, bytes unchanged)."""
    d = tmp_path_factory.mktemp("hf-tok")
    shutil.copy(bpe_dir / "encoder.json", d / "vocab.json")
    shutil.copy(bpe_dir / "vocab.bpe", d / "merges.txt")
    ref = transformers.GPT2TokenizerFast.from_pretrained(d)
    assert ref.encode("Hello, world") == [15496, 11, 995]  # guards against an empty vocab
    return ref


def test_known_ids(tokenizer):
    assert tokenizer.encode("Hello, world") == [15496, 11, 995]
    assert tokenizer.eot_id == tokenizer.pad_id == 50256
    assert tokenizer.vocab_size == 50257
    assert tokenizer.encode("<|endoftext|>") != [50256]  # ordinary text, never the special id
    assert tokenizer.decode([15496, 11, 995, 50256]) == "Hello, world<|endoftext|>"
    assert tokenizer.name.startswith("gpt2-bpe:")


def test_ids_match_transformers(tokenizer, reference_tokenizer):
    texts = TEXTS + _imdb_sample()
    for text in texts:
        want = reference_tokenizer.encode(text.replace("<|endoftext|>", "<|endoftext |>"))
        assert tokenizer.encode(text.replace("<|endoftext|>", "<|endoftext |>")) == want, text
        assert tokenizer.decode(tokenizer.encode(text)) == text
    assert len(texts) > 100 or os.environ.get("CI") != "true"
    batch = tokenizer.encode_batch(texts, max_length=None)
    assert batch == [tokenizer.encode(t) for t in texts]
    assert tokenizer.encode_batch(texts, max_length=5) == [ids[:5] for ids in batch]
    with pytest.raises(SentibenchError, match="max_length"):
        tokenizer.encode_batch(texts, max_length=0)


def test_hf_file_names_and_save_round_trip(tokenizer, bpe_dir, tmp_path):
    hf_dir = tmp_path / "hf-names"
    hf_dir.mkdir()
    shutil.copy(bpe_dir / "encoder.json", hf_dir / "vocab.json")
    shutil.copy(bpe_dir / "vocab.bpe", hf_dir / "merges.txt")
    assert load_tokenizer(hf_dir).name == tokenizer.name
    tokenizer.save(tmp_path / "saved")
    saved = load_tokenizer(tmp_path / "saved")
    assert saved.name == tokenizer.name
    assert saved.encode(TEXTS[5]) == tokenizer.encode(TEXTS[5])
    merges = (tmp_path / "saved" / "merges.txt").read_text("utf-8").splitlines()
    assert merges == (bpe_dir / "vocab.bpe").read_text("utf-8").splitlines()
    vocab = json.loads((tmp_path / "saved" / "vocab.json").read_text("utf-8"))
    assert vocab == json.loads((bpe_dir / "encoder.json").read_text("utf-8"))


def test_inconsistent_bpe_files_are_refused(bpe_dir, tmp_path):
    lines = (bpe_dir / "vocab.bpe").read_text("utf-8").splitlines()
    shutil.copy(bpe_dir / "encoder.json", tmp_path / "vocab.json")
    (tmp_path / "merges.txt").write_text("\n".join(lines[:1] + lines[2:]) + "\n", "utf-8")
    with pytest.raises(SentibenchError, match="disagree"):
        load_tokenizer(tmp_path)


def test_env_dir_then_hub_cache_then_tiktoken(bpe_dir, tokenizer, tmp_path, monkeypatch,
                                              offline_hub):
    monkeypatch.setenv(TOKENIZER_DIR_ENV, str(bpe_dir))
    assert load_tokenizer().name == tokenizer.name
    assert load_tokenizer("gpt2").name == tokenizer.name
    monkeypatch.setenv(TOKENIZER_DIR_ENV, str(tmp_path))
    with pytest.raises(SentibenchError, match=f"{TOKENIZER_DIR_ENV}=.*no GPT-2 tokenizer files"):
        load_tokenizer()
    monkeypatch.delenv(TOKENIZER_DIR_ENV)
    files = {"vocab.json": bpe_dir / "encoder.json", "merges.txt": bpe_dir / "vocab.bpe"}
    _fake_hub_cache(offline_hub, "openai-community/gpt2", files)
    assert load_tokenizer("gpt2-small (124M)").name == tokenizer.name
    # tiktoken's own cache, filled with the same files, serves the name-less fallback
    from tiktoken_ext import openai_public

    cache = tmp_path / "tiktoken-cache"
    cache.mkdir()
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(cache))
    monkeypatch.setattr("tiktoken.load.read_file", _no_network)
    with pytest.raises(SentibenchError, match=TOKENIZER_DIR_ENV):
        load_tokenizer("gpt2-large")  # not in the hub cache, and tiktoken cannot download
    base = "https://openaipublic.blob.core.windows.net/gpt-2/encodings/main/"
    for name in ("vocab.bpe", "encoder.json"):
        shutil.copy(bpe_dir / name, cache / hashlib.sha1((base + name).encode()).hexdigest())
    assert openai_public.gpt2()["special_tokens"] == {"<|endoftext|>": 50256}
    assert load_tokenizer().name == tokenizer.name


def _no_network(blobpath: str) -> bytes:
    raise ConnectionError(f"no network in tests: {blobpath}")


# ---------------------------------------------------------------- classifier


def classifier(pooling="last", average=False, seed=123, **cfg) -> GPT2Classifier:
    torch.manual_seed(0)
    return GPT2Classifier(GPT2(tiny_gpt2_config(**cfg)), num_classes=3, pooling=pooling,
                          average=average, pad_id=63, seed=seed).eval()


def test_head_is_seeded_and_replaces_lm_head():
    a, b = classifier(seed=7), classifier(seed=7)
    torch.testing.assert_close(a.head.weight, b.head.weight, atol=0, rtol=0)
    assert a.head.weight.shape == (3, 32) and a.head.bias is not None
    assert a.head is a.gpt.lm_head and a.gpt.lm_head.weight is not a.gpt.wte.weight
    assert a.fixed_padding is False and classifier("last_padded").fixed_padding is True
    with pytest.raises(SentibenchError, match="pooling"):
        classifier("middle")


def _trainable_expected(cfg: GPTConfig, classes: int) -> dict[str, int]:
    e = cfg.emb_dim
    head = e * classes + classes
    block = 12 * e * e + 13 * e
    total = cfg.vocab_size * e + cfg.context_length * e + cfg.n_layers * block + 2 * e + head
    return {"last_layer": head, "last_block": head + block + 2 * e,
            "last_two_blocks": head + 2 * block + 2 * e, "all": total}


@pytest.mark.parametrize("mode", ["last_layer", "last_block", "last_two_blocks", "all"])
def test_freezing_counts_and_optimizer_step(mode):
    model = classifier(average=True).train()
    model.set_trainable(mode)
    total, trainable = count_parameters(model)
    expected = _trainable_expected(model.gpt.config, 3)
    assert (total, trainable) == (expected["all"], expected[mode])
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    ids = torch.randint(0, 64, (4, 12))
    torch.nn.functional.cross_entropy(model(ids), torch.tensor([0, 1, 2, 0])).backward()
    opt.step()
    for name, p in model.named_parameters():
        changed = not torch.equal(p, before[name])
        assert changed == p.requires_grad, name
    with pytest.raises(SentibenchError, match="trainable"):
        model.set_trainable("some")


def _padded_batch():
    lengths = [12, 5, 1]
    ids = torch.full((3, 12), 63)
    mask = torch.zeros(3, 12, dtype=torch.long)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(0, 63, (n,), generator=torch.Generator().manual_seed(row))
        mask[row, :n] = 1
    return ids, mask, lengths


@pytest.mark.parametrize("pooling", ["last", "first", "last_padded"])
@pytest.mark.parametrize("average", [False, True])
def test_pooling_reads_the_claimed_positions(pooling, average):
    model = classifier(pooling, average)
    ids, mask, lengths = _padded_batch()
    with torch.no_grad():
        hidden = model.gpt.hidden_states(ids)  # [B,T,E]
        got = model(ids, mask)
        for row, n in enumerate(lengths):
            h = hidden[row]
            if average:
                pooled = h.mean(0) if pooling == "last_padded" else h[:n].mean(0)
            else:
                pooled = {"last": h[n - 1], "first": h[0], "last_padded": h[-1]}[pooling]
            torch.testing.assert_close(got[row], model.head(pooled), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("average", [False, True])
def test_last_pooling_ignores_right_padding(average):
    model = classifier("last", average)
    ids, mask, lengths = _padded_batch()
    _assert_each_row_scores_as_alone(model)
    with torch.no_grad():
        for row, n in enumerate(lengths):
            alone = model(ids[row : row + 1, :n], mask[row : row + 1, :n])
            no_mask = model(ids[row : row + 1, :n])
            torch.testing.assert_close(no_mask, alone, atol=1e-6, rtol=1e-6)


def _assert_each_row_scores_as_alone(model: GPT2Classifier) -> None:
    """Each row of the padded batch gets the logits it gets alone, unpadded."""
    ids, mask, lengths = _padded_batch()
    with torch.no_grad():
        batch = model(ids, mask)
        for row, n in enumerate(lengths):
            alone = model(ids[row : row + 1, :n], mask[row : row + 1, :n])
            torch.testing.assert_close(batch[row : row + 1], alone, atol=1e-5, rtol=1e-5)


def test_save_and_load_classifier(tokenizer, tmp_path):
    torch.manual_seed(0)
    backbone = GPT2(tiny_gpt2_config(vocab_size=50257, context_length=16))
    model = GPT2Classifier(backbone, num_classes=2, pooling="first", average=True, seed=1).eval()
    save_classifier(model, tokenizer, tmp_path / "run")
    names = sorted(p.name for p in (tmp_path / "run").iterdir())
    assert names == ["config.json", "merges.txt", "model.safetensors", "vocab.json"]
    loaded, tok = load_classifier(tmp_path / "run")
    assert (loaded.pooling, loaded.average, loaded.num_classes) == ("first", True, 2)
    assert tok.name == tokenizer.name and loaded.pad_id == 50256
    ids = torch.tensor([tokenizer.encode("A fine film.") + [50256] * 3])
    mask = (torch.arange(ids.shape[1]) < ids.shape[1] - 3).long()[None]
    with torch.no_grad():
        torch.testing.assert_close(loaded.eval()(ids, mask), model(ids, mask), atol=0, rtol=0)
    (tmp_path / "run" / "config.json").unlink()  # what an interrupted save leaves
    with pytest.raises(SentibenchError, match="no config.json"):
        load_classifier(tmp_path / "run")


def test_random_weights_are_reproducible_from_the_seed(tiny_gpt2_dir):
    from sentibench.models.options import GPTArgs
    from sentibench.models.registry import build_gpt2

    args = GPTArgs(model_size=str(tiny_gpt2_dir), weights="random")
    first, second = build_gpt2(args, seed=7).model, build_gpt2(args, seed=7).model
    other = build_gpt2(args, seed=8).model
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(),
                            strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(first.gpt.wte.weight, other.gpt.wte.weight)


def test_without_the_causal_mask_only_outputs_the_mask_changed_differ():
    torch.manual_seed(0)
    one_layer = GPT2(tiny_gpt2_config(n_layers=1)).eval()
    ids = torch.randint(0, 64, (2, 10))
    with torch.no_grad():
        causal = one_layer.hidden_states(ids)
        one_layer.set_causal(False)
        full = one_layer.hidden_states(ids)
    # the last position attends to every token either way; with one layer nothing else
    # reaches it, so only the earlier positions (which now also see later tokens) change
    torch.testing.assert_close(full[:, -1], causal[:, -1], atol=1e-5, rtol=1e-5)
    assert not torch.allclose(full[:, :-1], causal[:, :-1], atol=1e-3)
    torch.manual_seed(0)
    two_layers = GPT2(tiny_gpt2_config(n_layers=2)).eval()
    with torch.no_grad():
        causal = two_layers.hidden_states(ids)
        two_layers.set_causal(False)
        # in the second layer the last position reads the changed earlier positions
        assert not torch.allclose(two_layers.hidden_states(ids)[:, -1], causal[:, -1],
                                  atol=1e-3)
        single = two_layers.hidden_states(ids[:, :1])  # one token: no mask to speak of
        two_layers.set_causal(True)
        torch.testing.assert_close(single, two_layers.hidden_states(ids[:, :1]))


@pytest.mark.parametrize("pooling", ["last", "first"])
def test_without_the_causal_mask_padding_stays_hidden(pooling, tokenizer, tmp_path):
    model = classifier(pooling)
    model.gpt.set_causal(False)
    _assert_each_row_scores_as_alone(model)
    model.set_trainable("last_block")  # causal: the last block's input would be cached
    assert model.cache_level() is None  # without the mask it depends on the padding
    torch.manual_seed(0)
    saved = GPT2Classifier(GPT2(tiny_gpt2_config(vocab_size=50257, context_length=16)),
                           pooling=pooling, seed=1).eval()
    saved.gpt.set_causal(False)
    save_classifier(saved, tokenizer, tmp_path / "run")
    loaded, _ = load_classifier(tmp_path / "run")
    assert loaded.gpt.config.causal is False
    assert all(block.attn.causal is False for block in loaded.gpt.blocks)


def test_last_padded_without_the_causal_mask_attends_to_its_padding():
    """The book's row 17: padded to a fixed length, read at position -1, no mask at all."""
    model = classifier("last_padded")
    model.gpt.set_causal(False)
    ids, mask, _ = _padded_batch()
    with torch.no_grad():
        got = model(ids, mask)
        hand = model.head(model.gpt.hidden_states(ids)[:, -1])  # no key mask
    torch.testing.assert_close(got, hand)


@pytest.mark.parametrize("causal", [True, False])
@pytest.mark.parametrize("pooling", ["last", "last_padded", "first"])
def test_last_block_at_the_read_position_equals_the_whole_block(pooling, causal):
    """Logits and every parameter's gradient, with right padding of different lengths."""
    model = GPT2Classifier(GPT2(tiny_gpt2_config()), num_classes=3, pooling=pooling, seed=0)
    model.gpt.set_causal(causal)
    generator = torch.Generator().manual_seed(1)
    ids = torch.randint(0, model.gpt.config.vocab_size, (3, 9), generator=generator)
    mask = torch.ones(3, 9, dtype=torch.long)
    mask[1, 6:], mask[2, 2:] = 0, 0
    grads = []
    for forward in (model, model.whole_forward):
        model.zero_grad(set_to_none=True)
        logits = forward(ids, mask)
        (logits * torch.tensor([1.0, -2.0, 0.5])).sum().backward()
        grads.append([logits.detach()] + [p.grad.clone() for p in model.parameters()])
    assert len(grads[0]) == len(list(model.parameters())) + 1
    for shortcut, whole in zip(*grads, strict=True):
        torch.testing.assert_close(shortcut, whole)
