"""Numbers checked for what they are, and the checks that need the whole plan, made when the
plan is made: ``bench --dry-run`` refuses what the real bench would refuse later."""

from __future__ import annotations

import json

import pytest

from sentibench.bench.overrides import parse_seeds
from sentibench.bench.plan import LENGTH_LIMITS, BenchArgs, plan
from sentibench.cli import main
from sentibench.core.errors import SentibenchError
from sentibench.core.options import check, convert, options_of
from sentibench.data.config import DataArgs, PrepareConfig
from sentibench.engine.config import PredictConfig, TrainConfig
from sentibench.models.options import GPTArgs, HFArgs
from sentibench.models.registry import MODELS
from sentibench.run.results import RunArgs
from sentibench.speed.args import CONFIG_DIR, SpeedArgs
from tests.helpers import synthetic_csvs

OPTION_CLASSES = (TrainConfig, PredictConfig, DataArgs, PrepareConfig, GPTArgs, HFArgs,
                  SpeedArgs, RunArgs, BenchArgs)
FLOAT_OPTIONS = [opt for cls in OPTION_CLASSES for opt in options_of(cls) if opt.kind is float]


def _cli(capsys, *argv: str) -> tuple[int, str]:
    """Exit code and stderr of one command (argparse's own errors exit through SystemExit)."""
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err


# --- numbers are checked for what they are ------------------------------------------------

def test_every_float_option_is_listed():
    assert sorted(opt.name for opt in FLOAT_OPTIONS) == [
        "feature_cache_gb", "int8_recheck", "learning_rate", "lora_alpha", "max_grad_norm",
        "peak_tflops", "warmup_ratio", "weight_decay"]


@pytest.mark.parametrize("opt", FLOAT_OPTIONS, ids=lambda o: o.name)
@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "NaN", "Infinity"])
def test_no_float_option_takes_a_non_finite_number(opt, text):
    value = convert(opt, text)
    with pytest.raises(SentibenchError) as caught:
        check(opt, value)
    assert str(caught.value) == f"{opt.flag} must be a finite number, got {value}"


@pytest.mark.parametrize(("flag", "text", "shown"), [
    ("--learning-rate", "nan", "--learning_rate/--learning-rate"),
    ("--learning-rate", "inf", "--learning_rate/--learning-rate"),
    ("--warmup-ratio", "nan", "--warmup-ratio/--warmup_ratio"),
    ("--max-grad-norm", "Infinity", "--max-grad-norm/--max_grad_norm"),
])
def test_a_non_finite_flag_is_refused_when_parsed(capsys, flag, text, shown):
    code, err = _cli(capsys, "train-hf", flag, text)
    value = float(text)
    assert (code, err) == (2, f"sentibench train-hf: error: argument {shown}: must be a finite "
                              f"number, got {value} (see `sentibench train-hf --help`)\n")


@pytest.mark.parametrize(("key", "text"), [("learning_rate", "inf"), ("warmup_ratio", "nan"),
                                           ("weight_decay", "-inf")])
def test_a_non_finite_override_is_refused_when_planned(capsys, tmp_path, key, text):
    code, err = _cli(capsys, "bench", "--models", "minilm", "--set", f"minilm.{key}={text}",
                     "--dry-run")
    flag = {"learning_rate": "--learning_rate", "warmup_ratio": "--warmup-ratio",
            "weight_decay": "--weight-decay"}[key]
    assert (code, err) == (2, f"sentibench bench: error: override minilm.{key}={text!r}: "
                              f"{flag} must be a finite number, got {float(text)}\n")


def test_a_toml_nan_is_refused_too(capsys, tmp_path):
    config = tmp_path / "o.toml"
    config.write_text("[minilm]\nlearning_rate = nan\n")
    code, err = _cli(capsys, "bench", "--models", "minilm", "--config", str(config),
                     "--dry-run")
    assert (code, err) == (2, "sentibench bench: error: override minilm.learning_rate=nan: "
                              "--learning_rate must be a finite number, got nan\n")


def test_a_nan_split_fraction_is_refused(capsys, tmp_path):
    code, err = _cli(capsys, "prepare", "--dataset", "files", "--train",
                     str(tmp_path / "t.csv"), "--split-fractions", "0.5,nan,0.5")
    assert (code, err) == (2, "sentibench prepare: error: --split-fractions '0.5,nan,0.5': "
                              "three positive fractions that sum to 1 (train, validation, "
                              "test); got nan\n")
    assert not (tmp_path / "data").exists()


# --- seeds ------------------------------------------------------------------------------

def test_a_seed_count_is_capped_before_any_list_is_made():
    with pytest.raises(SentibenchError) as caught:
        parse_seeds("1001")
    assert str(caught.value) == "--seeds '1001': at most 1000 seeds per row"
    assert parse_seeds("1000")[-1] == 123 + 999


@pytest.mark.parametrize(("text", "message"), [
    ("1001", "--seeds '1001': at most 1000 seeds per row"),
    ("5,-1", "--seeds '5,-1': seed -1 is outside 0 to 4294967295 (numpy's seed range)"),
    ("1,4294967296",
     "--seeds '1,4294967296': seed 4294967296 is outside 0 to 4294967295 (numpy's seed range)"),
])
def test_seeds_out_of_range_are_refused_at_plan_time(capsys, tmp_path, text, message):
    code, err = _cli(capsys, "bench", "--models", "dummy", "--seeds", text, "--dry-run")
    assert (code, err) == (2, f"sentibench bench: error: {message}\n")


def test_a_list_of_seeds_at_the_edges_is_accepted():
    assert parse_seeds("0,4294967295") == [0, 4294967295]


# --- --ensemble against the plan --------------------------------------------------------

@pytest.mark.parametrize(("argv", "message"), [
    (["--models", "dummy,logreg", "--ensemble", "3"],
     "--ensemble 3: the plan makes only 2 runs (rows x seeds), fewer than the 3 it would "
     "average; use --ensemble 2 or fewer, or more rows or --seeds"),
    (["--models", "dummy", "--ensemble", "2"],
     "--ensemble 2: the plan makes only 1 run (rows x seeds), fewer than the 2 it would "
     "average; give more rows or --seeds"),
    (["--models", "minilm", "--seeds", "3", "--ensemble", "4"],
     "--ensemble 4: the plan makes only 3 runs (rows x seeds), fewer than the 4 it would "
     "average; use --ensemble 3 or fewer, or more rows or --seeds"),
    (["--models", "dummy,logreg", "--ensemble", "1"],
     "--ensemble 1: an ensemble needs two or more runs"),
    (["--models", "dummy,logreg", "--ensemble", "0"],
     "--ensemble 0: an ensemble needs two or more runs"),
    (["--models", "dummy,logreg", "--ensemble", "-2"],
     "--ensemble -2: an ensemble needs two or more runs"),
])
def test_ensemble_is_checked_against_the_plan_in_a_dry_run(capsys, argv, message):
    code, err = _cli(capsys, "bench", *argv, "--dry-run")
    assert (code, err) == (2, f"sentibench bench: error: {message}\n")


def test_ensemble_too_large_fails_before_anything_runs(capsys, tmp_path):
    data = synthetic_csvs(tmp_path / "data", (40, 10, 10))
    code, err = _cli(capsys, "bench", "--models", "dummy,logreg", "--ensemble", "3",
                     "--data-dir", str(data), "--out", str(tmp_path / "b"))
    assert code == 2 and err.startswith("sentibench bench: error: --ensemble 3: the plan")
    assert not (tmp_path / "b").exists()


def test_a_rerun_checks_its_ensemble_too(capsys, tmp_path):
    old = tmp_path / "old"
    old.mkdir()
    rows = [{"name": "dummy", "model": "dummy", "family": "sklearn", "settings": {}}]
    (old / "bench.json").write_text(json.dumps({"experiments": rows, "ensemble": 2,
                                                "data_dir": str(tmp_path / "data")}))
    code, err = _cli(capsys, "bench", "--rerun", str(old), "--dry-run")
    assert (code, err) == (2, "sentibench bench: error: --ensemble 2: the plan makes only 1 "
                              "run (rows x seeds), fewer than the 2 it would average; give "
                              "more rows or --seeds\n")


# --- lengths past a registered model's position embeddings ------------------------------

@pytest.mark.parametrize(("model", "key", "length", "flag", "limit"), [
    ("minilm", "max_length", 600, "--max-length", 512),
    ("roberta", "max_length", 513, "--max-length", 512),
    ("deberta-v3-base", "max_length", 1024, "--max-length", 512),
    ("modernbert-base", "max_length", 8193, "--max-length", 8192),
    ("gpt2-small", "context_length", 2048, "--context_length", 1024),
])
def test_a_length_past_the_model_is_refused_in_a_dry_run(capsys, model, key, length, flag,
                                                          limit):
    code, err = _cli(capsys, "bench", "--models", model, "--set", f"{model}.{key}={length}",
                     "--dry-run")
    assert (code, err) == (2, f"sentibench bench: error: bench row {model}: {flag} {length} "
                              f"exceeds the {limit} tokens this model accepts (its position "
                              f"embeddings end there); use at most {limit}, or "
                              "--eval-windows to read longer texts\n")


def test_lengths_up_to_the_limit_and_keywords_pass():
    experiments = plan("quick", ["roberta", "gpt2-small", "modernbert-large"],
                       {"roberta": {"max_length": "512"},
                        "gpt2-small": {"context_length": "model_context_length"},
                        "modernbert-large": {"max_length": "8192"}})
    assert [e.settings.get("max_length", e.settings.get("context_length"))
            for e in experiments] == [512, "model_context_length", 8192]


def test_a_model_given_by_path_is_not_judged_before_it_is_loaded(tmp_path):
    local = tmp_path / "my-encoder"
    local.mkdir()
    (local / "config.json").write_text('{"model_type": "bert"}')
    [exp] = plan("quick", [str(local)], {str(local): {"max_length": "100000"}})
    assert exp.settings["max_length"] == 100000


def test_the_length_table_covers_every_neural_model_and_matches_the_shipped_configs():
    neural = sorted(name for name, spec in MODELS.items() if spec.family != "sklearn")
    assert sorted(LENGTH_LIMITS) == neural
    for path in sorted(CONFIG_DIR.glob("*.json")):
        positions = json.loads(path.read_text())["config"]["max_position_embeddings"]
        offset = 2 if path.stem == "roberta" else 0  # RoBERTa's padding offset (514 -> 512)
        assert (path.stem, LENGTH_LIMITS[path.stem]) == (path.stem, positions - offset)


@pytest.mark.parametrize("text", ["-1", "4294967296", "1e20"])
def test_a_training_seed_out_of_range_is_refused_at_plan_time(capsys, text):
    code, err = _cli(capsys, "bench", "--models", "minilm", "--set", f"minilm.seed={text}",
                     "--dry-run")
    value = int(float(text))
    assert (code, err) == (2, "sentibench bench: error: bench row minilm: --seed must be 0 to "
                              f"4294967295 (numpy's seed range), got {value}\n")
