"""Planning a bench: names, presets, typed overrides, and their one-line errors."""

from __future__ import annotations

import json

import pytest

from sentibench.bench.overrides import load_override_file, parse_overrides
from sentibench.bench.plan import load_rerun, plan
from sentibench.bench.presets import PRESETS
from sentibench.cli import main
from sentibench.core.errors import SentibenchError
from sentibench.models.registry import MODELS
from sentibench.run.results import safe_name

REQUIRED_NAMES = ["dummy", "logreg", "logreg-tfidf", "gpt2-small", "gpt2-medium", "gpt2-large",
                  "gpt2-xl", "distilbert", "bert", "bert-large", "roberta", "deberta-v3-base",
                  "modernbert-base", "modernbert-large"]


def test_every_required_name_is_registered_with_a_known_family():
    for name in REQUIRED_NAMES:
        assert MODELS[name].family in {"sklearn", "gpt2", "hf"}


def test_reference_preset_uses_the_reference_settings():
    experiments = {e.name: e for e in plan("reference", None, {})}
    assert list(experiments) == [row.row_name for row in PRESETS["reference"].rows]
    assert experiments["gpt2-small"].settings == {
        "learning_rate": 5e-5, "trainable_layers": "all", "num_epochs": 1,
        "trainable_token_pos": "last_padded"}  # position -1 of the padded review, exactly
    assert experiments["roberta"].settings["trainable_layers"] == "last_block"
    assert experiments["distilbert"].settings["learning_rate"] == 5e-6
    assert experiments["dummy"].settings == {}
    assert all(e.note is None for name, e in experiments.items()
               if name != "gpt2-small-true-last-token")
    # the corrected pooling is an extra row, labelled as sentibench's, not the reference's
    fix = experiments["gpt2-small-true-last-token"]
    assert fix.model == "gpt2-small" and "sentibench's fix" in fix.note
    assert fix.settings == {**experiments["gpt2-small"].settings, "trainable_token_pos": "last"}
    registered = [e for e in experiments.values() if MODELS[e.model].reference is not None]
    assert len({e.model for e in registered}) == 9  # every row of the reference's table


def test_models_picks_preset_rows_by_name_or_by_model():
    exact, fix = plan("reference", ["gpt2-small", "gpt2-small-true-last-token"], {})
    assert exact.settings["trainable_token_pos"] == "last_padded"
    assert fix.settings["trainable_token_pos"] == "last" and fix.name != exact.name
    # an override by model reaches every row of it; one by row name only that row
    a, b = plan("reference", ["gpt2-small", "gpt2-small-true-last-token"],
                {"gpt2-small": {"num_epochs": "2"},
                 "gpt2-small-true-last-token": {"batch_size": "4"}})
    assert a.settings["num_epochs"] == b.settings["num_epochs"] == 2
    assert "batch_size" not in a.settings and b.settings["batch_size"] == 4


def test_spam_ablations_are_the_books_nineteen_rows():
    rows = plan("spam-ablations", None, {})
    assert len(rows) == 19 and PRESETS["spam-ablations"].dataset == "sms-spam"
    assert [e.reference["row"] for e in rows] == list(range(1, 20))
    by_row = {e.reference["row"]: e for e in rows}
    base = by_row[1].settings
    assert base["trainable_layers"] == "last_block" and base["num_epochs"] == 5
    assert base["trainable_token_pos"] == "last_padded"
    assert base["context_length"] == "longest_training_example"
    changed = {row: {k: v for k, v in e.settings.items() if base.get(k) != v}
               for row, e in by_row.items() if e.model == "gpt2-small"}
    assert changed[4] == {"trainable_layers": "last_two_blocks"}
    assert changed[11] == {"trainable_layers": "lora", "lora_rank": 16, "lora_alpha": 16.0}
    assert changed[14] == {"no_padding": True, "batch_size": 1}
    assert changed[15] == {"no_padding": True, "batch_size": 1, "accumulation_steps": 8}
    assert changed[16] == {"trainable_token_pos": "last"}
    assert changed[17] == {"disable_causal_mask": True}
    assert changed[18] == {"ignore_index": 50256}
    assert changed[19] == {"average_embeddings": True}
    assert by_row[12].model == "gpt2-xl" and by_row[12].settings["lora_alpha"] == 8.0
    assert (by_row[1].reference["test_accuracy"], by_row[1].reference["train_accuracy"],
            by_row[1].reference["validation_accuracy"]) == (0.95, 0.9663, 0.9933)
    assert by_row[9].reference["train_minutes"] == 8.12


def test_best_preset_is_a_checked_plan_on_the_reference_split():
    rows = {e.name: e for e in plan("best", None, {})}
    assert PRESETS["best"].dataset == "imdb"
    top = rows["modernbert-large-512-head+tail"].settings
    assert (top["max_length"], top["truncation"], top["lr_schedule"], top["select_best"]) == \
        (512, "head+tail", "linear", "val_accuracy")
    assert top["num_epochs"] == 2 and top["warmup_ratio"] == 0.1
    assert rows["gpt2-small-true-last-token-512"].settings["trainable_token_pos"] == "last"
    assert "logreg-tfidf" in rows


def test_quick_preset_slices_the_transformer_row():
    minilm = {e.name: e for e in plan("quick", None, {})}["minilm"]
    assert minilm.family == "hf"
    assert minilm.settings["max_train_samples"] == 2000
    assert minilm.settings["max_length"] == 128


def test_overrides_are_type_checked_and_converted():
    experiments = plan("quick", ["gpt2-small", "logreg"],
                       parse_overrides(["gpt2-small.num_epochs=2",
                                        "gpt2-small.average_embeddings=true",
                                        "gpt2-small.learning_rate=1e-4",
                                        "logreg.max_train_samples=100"]))
    gpt = experiments[0].settings
    assert gpt["num_epochs"] == 2 and isinstance(gpt["num_epochs"], int)
    assert gpt["average_embeddings"] is True
    assert gpt["learning_rate"] == pytest.approx(1e-4)
    assert experiments[1].settings == {"max_train_samples": 100}


@pytest.mark.parametrize("models,overrides,message", [
    (["nope"], {}, "unknown model 'nope'; known: dummy, logreg"),
    (["gpt2-small"], {"gpt2-small": {"num_epochs": "two"}}, "expected int"),
    (["gpt2-small"], {"gpt2-small": {"average_embeddings": "maybe"}}, "expected bool"),
    (["gpt2-small"], {"gpt2-small": {"colour": "red"}}, "unknown override key gpt2-small.colour"),
    (["logreg"], {"logreg": {"learning_rate": "1"}}, "unknown override key logreg.learning_rate"),
    (["logreg"], {"bert": {"num_epochs": "1"}}, "not in the bench"),
    (["logreg", "logreg"], {}, "twice"),
])
def test_bad_plans_fail_with_one_line_errors(models, overrides, message):
    with pytest.raises(SentibenchError, match=message) as info:
        plan("quick", models, overrides)
    assert "\n" not in str(info.value)


def test_unknown_preset_and_malformed_set():
    with pytest.raises(SentibenchError, match="unknown preset 'huge'"):
        plan("huge", None, {})
    with pytest.raises(SentibenchError, match="MODEL.KEY=VALUE"):
        parse_overrides(["num_epochs=2"])


def test_local_gpt2_directory_is_planned_as_gpt2(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (experiment,) = plan("quick", [str(tmp_path)], {})
    assert experiment.family == "gpt2"
    assert "num_epochs" in [*plan("quick", [str(tmp_path)],
                                  {str(tmp_path): {"num_epochs": "3"}})[0].settings]


def test_override_file_is_toml_with_one_table_per_model(tmp_path):
    path = tmp_path / "o.toml"
    path.write_text('[gpt2-small]\nnum_epochs = 3\nlearning_rate = 1e-5\n')
    (exp,) = plan("quick", ["gpt2-small"], load_override_file(path))
    assert exp.settings["num_epochs"] == 3 and exp.settings["learning_rate"] == 1e-5
    path.write_text("num_epochs = 3\n")
    with pytest.raises(SentibenchError, match="must be a \\[model\\] table"):
        load_override_file(path)
    path.write_text("[x\n")
    with pytest.raises(SentibenchError, match="not valid TOML"):
        load_override_file(path)


def test_rerun_reads_the_plan_of_an_earlier_bench(tmp_path):
    with pytest.raises(SentibenchError, match="not a sentibench bench directory"):
        load_rerun(tmp_path, None, [])
    experiments = plan("quick", ["logreg", "gpt2-small"], {"gpt2-small": {"num_epochs": "2"}})
    from dataclasses import asdict

    (tmp_path / "bench.json").write_text(json.dumps({
        "preset": "quick", "data_dir": "d", "source": None, "device": "cpu",
        "experiments": [asdict(e) for e in experiments]}))
    again = load_rerun(tmp_path, tmp_path / "new", ["sentibench"])
    assert plan(again.preset, again.models, again.overrides) == experiments
    assert again.device == "cpu"


def test_run_dir_names_are_safe():
    assert safe_name("gpt2-small") == "gpt2-small"
    assert "/" not in safe_name("/tmp/models/tiny gpt")


def test_cli_reports_unknown_model_in_one_line(capsys, tmp_path):
    code = main(["bench", "--models", "dummy,nope", "--out", str(tmp_path / "b"),
                 "--data-dir", str(tmp_path / "data")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "unknown model 'nope'" in err
    assert not (tmp_path / "b").exists()


def test_paths_and_hub_ids_are_named_by_their_last_component(tmp_path):
    model_dir = tmp_path / "my-gpt2"
    model_dir.mkdir()
    (model_dir / "config.json").write_text('{"model_type": "gpt2"}')
    experiments = plan("quick", [str(model_dir) + "/", "org/some.encoder"],
                       {str(model_dir) + "/": {"num_epochs": "2"}, "some.encoder": {"seed": 7}})
    assert [e.name for e in experiments] == ["my-gpt2", "some.encoder"]
    assert [e.family for e in experiments] == ["gpt2", "hf"]
    assert experiments[0].settings["num_epochs"] == 2 and experiments[1].settings["seed"] == 7
    other = tmp_path / "x" / "my-gpt2"
    other.mkdir(parents=True)
    (other / "config.json").write_text('{"model_type": "gpt2"}')
    with pytest.raises(SentibenchError, match="twice"):
        plan("quick", [str(model_dir), str(other)], {})


def test_empty_models_is_an_error_not_the_preset(tmp_path, capsys):
    assert main(["bench", "--models", "", "--out", str(tmp_path / "b")]) == 2
    assert "--models lists no model" in capsys.readouterr().err
    assert not (tmp_path / "b").exists()


def test_a_mistake_in_the_last_row_fails_before_the_first_row_runs(tmp_path, capsys):
    code = main(["bench", "--models", "dummy,logreg,gpt2-small", "--out", str(tmp_path / "b"),
                 "--data-dir", str(tmp_path / "data"),
                 "--set", "gpt2-small.context_length=longest"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1
    assert "bench row gpt2-small: --context_length must be a positive integer" in err
    assert not (tmp_path / "b").exists()


def _tiny_prepared(directory):
    import pandas as pd

    directory.mkdir()
    for split, rows in (("train", 40), ("validation", 10), ("test", 10)):
        pd.DataFrame({"text": [f"{'good' if i % 2 else 'bad'} film {i}" for i in range(rows)],
                      "label": [i % 2 for i in range(rows)]}).to_csv(
            directory / f"{split}.csv", index=False)
    return directory


def test_a_bench_takes_a_fixed_plan_for_rows_that_have_not_finished(tmp_path, capsys):
    data = _tiny_prepared(tmp_path / "data")
    bench = tmp_path / "bench"
    base = ["bench", "--models", "dummy,logreg", "--data-dir", str(data), "--out", str(bench)]
    assert main([*base, "--set", "logreg.max_train_samples=1"]) == 2  # one row: one class
    assert "failed" in (bench / "results.md").read_text()
    capsys.readouterr()
    assert main([*base, "--set", "logreg.max_train_samples=30"]) == 0  # the fix is taken
    out = capsys.readouterr().out
    assert "dummy: already completed" in out
    plan_file = json.loads((bench / "bench.json").read_text())
    assert plan_file["experiments"][1]["settings"] == {"max_train_samples": 30}
    assert main([*base, "--set", "logreg.max_train_samples=30",
                 "--set", "dummy.max_train_samples=20"]) == 2  # a finished row: no
    assert "finished rows dummy differ" in capsys.readouterr().err


def test_models_from_a_preset_keep_the_presets_settings():
    rows = {e.name: e.settings for e in plan("spam", ["dummy", "minilm", "gpt2-small"], {})}
    assert rows["minilm"]["num_epochs"] == 3 and rows["minilm"]["max_length"] == 128
    book = rows["gpt2-small"]
    assert book["num_epochs"] == 5 and book["trainable_token_pos"] == "last_padded"
    assert book["context_length"] == "longest_training_example" and book["eval_iter"] == 5
    assert plan("quick", ["minilm"], {})[0].settings["max_train_samples"] == 2000
    assert "max_train_samples" not in plan("reference", ["minilm"], {})[0].settings


def test_seeds_multiply_the_rows_that_depend_on_randomness():
    from sentibench.bench.overrides import parse_seeds

    assert parse_seeds("3") == [123, 124, 125]
    assert parse_seeds("7,1") == [7, 1]
    for bad in ("0", "a", "1,1"):
        with pytest.raises(SentibenchError, match="--seeds"):
            parse_seeds(bad)
    rows = plan("quick", ["dummy", "logreg", "minilm"], {}, seeds=[5, 6])
    assert [r.name for r in rows] == ["dummy", "logreg", "minilm-seed5", "minilm-seed6"]
    assert [r.settings.get("seed") for r in rows] == [None, None, 5, 6]
    assert {r.group for r in rows[2:]} == {"minilm"}
    assert rows[2].settings["max_length"] == 128  # the preset's own settings are kept


def test_rerun_repeats_the_seeds(tmp_path):
    from dataclasses import asdict

    experiments = plan("quick", ["logreg", "minilm"], {}, seeds=[5, 6])
    (tmp_path / "bench.json").write_text(json.dumps({
        "preset": "quick", "data_dir": "d", "source": None, "device": "cpu", "seeds": [5, 6],
        "experiments": [asdict(e) for e in experiments]}))
    again = load_rerun(tmp_path, tmp_path / "new", ["sentibench"])
    assert again.seeds == [5, 6] and again.models == ["logreg", "minilm"]
    assert plan(again.preset, again.models, again.overrides, again.seeds) == experiments
