"""`tuneforge models list|show|config` and `tuneforge plan` from the command line (in-process main())."""
from __future__ import annotations

import json

import yaml

from tuneforge.cli import main
from tuneforge.config import from_dict
from tuneforge.gallery import entries


def test_models_list_table_and_json(capsys):
    assert main(["models", "list"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0].split()[:3] == ["id", "size", "family"]
    for e in entries():
        assert e.id in out
    assert "qwen2.5-7b-instruct     7.61B" in out.replace("  ", " ") or "7.61B" in out
    assert main(["models", "list", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {d["id"] for d in data} == {e.id for e in entries()}


def test_models_show(capsys):
    assert main(["models", "show", "llama-3.1-8b-instruct"]) == 0
    out = capsys.readouterr().out
    assert "meta-llama/Llama-3.1-8B-Instruct" in out and "<|eot_id|>" in out and "131,072" in out
    assert main(["models", "show", "gemma-2-2b-it", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["head_dim"] == 256 and d["end_of_turn"] == "<end_of_turn>" and d["recommended"]["dpo"]["lora"]["dpo_beta"] == 0.1


def test_unknown_model_is_one_line_and_exit_2(capsys):
    assert main(["models", "show", "qwen-7b"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not in the gallery" in err and "Traceback" not in err


def test_models_config_is_a_valid_config_with_sources(capsys, tmp_path):
    assert main(["models", "config", "qwen2.5-7b-instruct", "--strategy", "dpo", "--method", "qlora4",
                 "--train-data", str(tmp_path / "d.jsonl")]) == 0
    text = capsys.readouterr().out
    raw = yaml.safe_load(text)
    assert raw["model"] == "qwen2.5-7b-instruct" and raw["load_in_4bit"] is True and raw["dpo_beta"] == 0.1
    assert raw["learning_rate"] == 5e-6 and raw["lora_dim"] == 32
    assert "# DPO practice" in text and "# DPO paper default" in text  # each value says where it comes from
    (tmp_path / "d.jsonl").write_text('{"prompt": "q", "chosen": "a", "rejected": "b"}\n')
    cfg = from_dict(raw)  # every key is a real config key with a valid value
    assert cfg.method == "qlora-4bit" and cfg.training_strategy == "dpo"


def test_plan_text_and_json(capsys):
    assert main(["plan", "qwen2.5-7b-instruct", "--gpu-memory", "24"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.split() and line.split()[0] in
            ("qlora4", "qlora8", "lora", "full")}
    assert " yes " in rows["qlora4"] and " yes " in rows["lora"] and " no " in rows["full"]
    assert "batch " in rows["qlora4"] and "ZeRO-3" in out and "GiB" in out
    assert main(["plan", "qwen2.5-7b-instruct", "--gpu-memory", "24", "--json", "--method", "lora"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["methods"][0]["fits"] and d["unit"] == "GiB" and "estimate_covers" in d
    assert main(["plan", "nope-7b", "--gpu-memory", "24"]) == 2
