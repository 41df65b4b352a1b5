"""Options declared once: the dataclass field drives flags, checks, conversion and resume."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pytest

from sentibench.bench.overrides import parse_overrides
from sentibench.bench.plan import allowed_settings, plan
from sentibench.cli import build_parser
from sentibench.core.errors import SentibenchError
from sentibench.core.options import (
    add_options,
    build,
    convert,
    from_namespace,
    option,
    option_map,
    options_of,
    to_dict,
    validate,
)
from sentibench.data.config import DataArgs, PrepareConfig
from sentibench.engine.config import TrainConfig
from sentibench.models.options import GPTArgs, HFArgs
from sentibench.models.registry import FAMILIES


@dataclass
class Toy:
    """A new options class: adding an option is adding a field."""

    steps: int = option(3, "how many", above=0)
    rate: float | None = option(None, "a rate", minimum=0)
    mode: str = option("a", "which", choices=("a", "b"))
    loud: bool = option(False, "say more")
    keep: bool = option(True, "keep things")
    where: Path = option(Path("x"), "a path")

    def __post_init__(self) -> None:
        validate(self)


def _parse(cls: type, argv: list[str], **defaults) -> argparse.Namespace:
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_options(parser, cls, defaults=defaults)
    return parser.parse_args(argv)


def test_types_are_resolved_from_the_annotations():
    kinds = {o.name: (o.kind, o.nullable) for o in options_of(Toy)}
    assert kinds == {"steps": (int, False), "rate": (float, True), "mode": (str, False),
                     "loud": (bool, False), "keep": (bool, False), "where": (Path, False)}


def test_a_new_dataclass_gets_flags_checks_and_conversion():
    args = _parse(Toy, ["--steps", "5", "--rate", "0.5", "--mode", "b", "--loud",
                        "--keep", "false", "--where", "y"])
    toy = from_namespace(Toy, args)
    assert toy == Toy(5, 0.5, "b", True, False, Path("y"))
    assert from_namespace(Toy, _parse(Toy, [])) == Toy()
    assert _parse(Toy, ["--steps=7"]).steps == 7  # kebab and snake spellings coincide here
    with pytest.raises(argparse.ArgumentError, match="must be positive, got 0"):
        _parse(Toy, ["--steps", "0"])
    with pytest.raises(argparse.ArgumentError, match="--mode: must be one of a, b, got 'c'"):
        _parse(Toy, ["--mode", "c"])
    with pytest.raises(SentibenchError, match="--rate must be zero or more, got -1"):
        Toy(rate=-1.0)


def test_convert_gives_real_types_and_one_line_errors():
    opts = option_map(Toy)
    assert convert(opts["steps"], "2") == 2 and convert(opts["steps"], "1e3") == 1000
    assert convert(opts["steps"], 4.0) == 4
    assert convert(opts["rate"], "1.5") == 1.5 and convert(opts["rate"], "none") is None
    assert convert(opts["keep"], "False") is False and convert(opts["loud"], "yes") is True
    assert convert(opts["where"], "a/b") == Path("a/b")
    for name, value, word in [("steps", "two", "expected int"), ("steps", 2.5, "expected int"),
                              ("loud", "maybe", "expected bool"),
                              ("rate", "fast", "expected float")]:
        with pytest.raises(SentibenchError, match=word) as info:
            convert(opts[name], value)
        assert "\n" not in str(info.value)


def test_every_option_of_the_training_commands_is_a_flag_with_its_declared_default():
    parser = build_parser()
    for command, family in (("train-gpt", "gpt2"), ("train-hf", "hf")):
        args = parser.parse_args([command])
        declared = [*options_of(FAMILIES[family].args), *options_of(TrainConfig),
                    *options_of(DataArgs)]
        for opt in declared:
            if not opt.cli:
                assert not hasattr(args, opt.name)
                continue
            expected = FAMILIES[family].train_defaults.get(opt.name, opt.default)
            assert getattr(args, opt.name) == expected, (command, opt.name)
    assert parser.parse_args(["train-gpt"]).learning_rate == 5e-5  # train_gpt.py's
    assert parser.parse_args(["train-hf"]).learning_rate == 5e-6  # train_bert_hf.py's
    prepare = parser.parse_args(["prepare", "--split", "official", "--dedupe"])
    assert from_namespace(PrepareConfig, prepare).split == "official"


def test_reference_and_kebab_spellings_reach_the_same_field():
    parser = build_parser()
    a = parser.parse_args(["train-gpt", "--num_epochs", "2", "--trainable_layers", "all",
                           "--feature_cache_gb", "1.5"])
    b = parser.parse_args(["train-gpt", "--num-epochs", "2", "--trainable-layers", "all",
                           "--feature-cache-gb", "1.5"])
    assert from_namespace(TrainConfig, a) == from_namespace(TrainConfig, b)
    assert from_namespace(GPTArgs, a) == from_namespace(GPTArgs, b)


def test_bench_overrides_use_the_declared_types():
    """--set used to type every None-default option as int, refusing 1.5 GiB."""
    (row,) = plan("quick", ["minilm"], parse_overrides([
        "minilm.feature_cache_gb=1.5", "minilm.use_attention_mask=false",
        "minilm.eval_batch_size=32", "minilm.precision=bf16", "minilm.max_length=64"]))
    assert row.settings["feature_cache_gb"] == 1.5
    assert row.settings["use_attention_mask"] is False
    assert row.settings["eval_batch_size"] == 32 and row.settings["precision"] == "bf16"
    for item, message in [("minilm.precision=fp64", "must be one of auto, fp32, bf16, fp16"),
                          ("minilm.batch_size=0", "must be positive"),
                          ("minilm.feature_cache_gb=-1", "zero or more"),
                          ("minilm.model=bert", "unknown override key minilm.model"),
                          ("minilm.device=cuda", "unknown override key minilm.device")]:
        with pytest.raises(SentibenchError, match=message) as info:
            plan("quick", ["minilm"], parse_overrides([item]))
        assert "\n" not in str(info.value)


def test_bench_settings_are_the_families_options():
    assert set(allowed_settings("sklearn")) == {"max_train_samples", "max_eval_samples",
                                                "class_weights", "train_subset", "per_class",
                                                "subset_seed", "C", "ngram_max",
                                                "report_to", "mlflow_uri",
                                                "mlflow_experiment", "logging_dir"}
    gpt = set(allowed_settings("gpt2"))
    assert {"context_length", "trainable_token_pos", "num_epochs", "eval_freq"} <= gpt
    assert not {"model_size", "device", "data_dir"} & gpt
    assert "use_attention_mask" in allowed_settings("hf")


def test_a_bad_row_combination_fails_when_planned():
    with pytest.raises(SentibenchError, match="bench row gpt2-small: --context_length"):
        plan("quick", ["dummy", "gpt2-small"], {"gpt2-small": {"context_length": "long"}})


def test_saved_settings_rebuild_the_same_options():
    """Resume rebuilds a run's options from results/checkpoint JSON."""
    cfg = TrainConfig(num_epochs=2, feature_cache_gb=1.5, precision="bf16")
    assert TrainConfig(**cfg.to_dict()) == cfg
    hf = HFArgs(model="minilm", use_attention_mask=False)
    assert build(HFArgs, to_dict(hf)) == hf
    data = DataArgs(Path("d"), 10, None)
    assert DataArgs(**to_dict(data)) == data and to_dict(data)["data_dir"] == "d"
