"""Output locations, all-or-nothing writing, the table, option checks, and ``tuneforge eval --predictions``."""
import builtins
import json

import pytest

from tuneforge.cli import main
from tuneforge.errors import ConfigError, DataError
from tuneforge.evaluation.data import read_predictions
from tuneforge.evaluation.results import check_output, default_output, render_table, write_results
from tuneforge.evaluation.run import EvalOptions, check_options, plan_metrics


def test_default_output_never_reuses_a_directory(tmp_path):
    assert default_output(tmp_path, "val") == tmp_path / "eval" / "val"
    (tmp_path / "eval" / "val").mkdir(parents=True)
    (tmp_path / "eval" / "val-2").mkdir()
    assert default_output(tmp_path, "val") == tmp_path / "eval" / "val-3"


def test_an_output_holding_results_is_refused(tmp_path):
    (tmp_path / "eval_results.json").write_text("{}")
    with pytest.raises(ConfigError, match="already holds eval_results.json"):
        check_output(tmp_path)
    with pytest.raises(ConfigError, match="not a directory"):
        check_output(tmp_path / "eval_results.json")


def test_write_results_is_all_or_nothing(tmp_path):
    target = tmp_path / "out"

    def rows():
        yield {"prediction": "a", "reference": "a"}
        raise RuntimeError("disk trouble half-way")

    with pytest.raises(RuntimeError):
        write_results(target, {"metrics": {}}, rows())
    assert not target.exists() and list(tmp_path.iterdir()) == []  # no partial directory, no staging left
    written = write_results(target, {"metrics": {"tuned": {"bleu": float("nan")}}}, [{"prediction": "中文"}])
    assert json.loads((written / "eval_results.json").read_text())["metrics"]["tuned"]["bleu"] is None
    assert json.loads((written / "predictions.jsonl").read_text()) == {"prediction": "中文"}
    other = tmp_path / "existing"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    write_results(other, {}, [])
    assert (other / "notes.txt").read_text() == "mine" and (other / "eval_results.json").is_file()


def test_table_shows_base_delta_and_which_is_better():
    table = render_table({"tuned": {"eval_loss": 1.5, "bleu": 20.0}, "base": {"eval_loss": 2.0, "bleu": 25.0}},
                         {"eval_loss": -0.5, "bleu": -5.0})
    lines = table.splitlines()
    assert lines[0].split()[:4] == ["metric", "unit", "tuned", "base"]
    loss = next(line for line in lines if line.startswith("eval_loss"))
    assert "1.5000" in loss and "2.0000" in loss and "-0.5000" in loss and loss.endswith("tuned")
    assert next(line for line in lines if line.startswith("bleu")).endswith("base")


def test_option_checks_before_anything_loads(tmp_path):
    assert plan_metrics(None).teacher and len(plan_metrics(None).generation) == 4
    assert plan_metrics(["loss"]).generation == () and plan_metrics(["bleu", "chrf"]).generation == ("bleu", "chrf")
    with pytest.raises(ConfigError, match="--metrics: unknown"):
        plan_metrics(["accuracy"])
    with pytest.raises(ConfigError, match="--max-new-tokens"):
        check_options(EvalOptions(model="m", data="d", max_new_tokens=0))
    with pytest.raises(ConfigError, match="--data FILE is needed"):
        check_options(EvalOptions(model="m"))
    with pytest.raises(ConfigError, match="give no model"):
        check_options(EvalOptions(model="m", predictions="p.jsonl"))


def test_bad_predictions_rows_name_file_line_and_field(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prediction": "a", "reference": "a"}\n{"prediction": "b"}\n', encoding="utf-8")
    with pytest.raises(DataError) as err:
        read_predictions(str(path))
    assert (err.value.line, err.value.field) == (2, "reference")
    path.write_text('{"prediction": 3, "reference": "a"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 1, field 'prediction': expected a string"):
        read_predictions(str(path))


def test_eval_predictions_file_end_to_end(tmp_path, capsys):
    path = tmp_path / "served.jsonl"
    rows = [{"prediction": "菊花茶适合日常饮用", "reference": "菊花茶适合日常饮用", "id": 1},
            {"prediction": "", "reference": "It is 4.", "id": 2}]
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    assert main(["eval", "--predictions", str(path)]) == 0
    out = tmp_path / "eval" / "served"
    results = json.loads((out / "eval_results.json").read_text(encoding="utf-8"))
    assert results["metrics"]["predictions"]["exact_match"] == 0.5
    assert results["metrics"]["predictions"]["rouge_l"] == pytest.approx(0.5)
    assert results["counts"] == {"rows": 2, "empty_predictions": {"predictions": 1}}
    scored = [json.loads(line) for line in (out / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["id"] for r in scored] == [1, 2] and scored[0]["scores"]["bleu"] == pytest.approx(100.0)
    assert "rouge_l" in capsys.readouterr().out
    assert main(["eval", "--predictions", str(path), "--json"]) == 0  # second time: a new directory
    assert json.loads(capsys.readouterr().out)["counts"]["rows"] == 2
    assert (tmp_path / "eval" / "served-2" / "eval_results.json").is_file()


def test_eval_predictions_bad_file_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"prediction": "a", "reference": "a"}\n{"answer": "b", "reference": "b"}\n', encoding="utf-8")
    assert main(["eval", "--predictions", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}, line 2, field 'prediction'" in err and "Traceback" not in err
    assert not (tmp_path / "eval").exists()


def test_lm_eval_missing_is_exit_2(tmp_path, capsys, monkeypatch):
    real_import = builtins.__import__

    def no_lm_eval(name, *args, **kwargs):
        if name == "lm_eval" or name.startswith("lm_eval."):
            raise ImportError("No module named 'lm_eval'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_lm_eval)
    assert main(["eval", "builtin:toy", "--lm-eval-tasks", "anything", "--output", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "pip install lm-eval" in err and "Traceback" not in err
    assert not (tmp_path / "o").exists()
