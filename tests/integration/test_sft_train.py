"""End-to-end SFT runs on the built-in toy model: data formats, validation, early stopping, CLI behaviour."""
import json
import subprocess
import sys

import pytest

import tuneforge
from tuneforge.cli import main


def _metrics(out):
    return [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]


FORMATS = {
    "instruction": {"instruction": "q {i}", "input": "", "output": "answer {i}"},
    "messages": {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "q {i}"},
                              {"role": "assistant", "content": "answer {i}"}]},
    "sharegpt": {"conversations": [{"from": "human", "value": "q {i}"}, {"from": "gpt", "value": "answer {i}"}]},
    "prompt_completion": {"prompt": "q {i}", "completion": "answer {i}"},
}


def _fill(template, i):
    return json.loads(json.dumps(template).replace("{i}", str(i)))


# Every format through the chat template in the default suite; without the template one format there (the plain
# concatenation does not depend on the format once rows are converted), the others with -m slow.
_FORMAT_CASES = [pytest.param(fmt, chat, id=f"{chat}-{fmt}",
                              marks=() if chat or fmt == "instruction" else pytest.mark.slow)
                 for chat in (True, False) for fmt in sorted(FORMATS)]


@pytest.mark.parametrize("fmt,chat", _FORMAT_CASES)
def test_each_format_trains(tmp_path, write_jsonl, fmt, chat):
    data = write_jsonl(tmp_path / "d.jsonl", [_fill(FORMATS[fmt], i) for i in range(12)])
    summary = tuneforge.train({"train_data": str(data), "output_dir": str(tmp_path / "o"), "max_steps": 2,
                               "per_device_train_batch_size": 4, "apply_chat_template": chat,
                               "validation_split": 0.25, "eval_steps": 1}, progress=False)
    assert summary.steps == 2
    assert {"eval_loss", "eval_token_accuracy"} <= summary.last_eval.keys()


def test_loss_goes_down_and_metrics_have_contract_names(tmp_path, sft_file):
    out = tmp_path / "o"
    summary = tuneforge.train({"train_data": str(sft_file), "output_dir": str(out), "num_train_epochs": 6,
                               "per_device_train_batch_size": 4, "learning_rate": 1e-2, "lora_dim": 0,
                               "validation_split": 0.25, "eval_steps": 0, "logging_steps": 1}, progress=False)
    records = _metrics(out)
    train = [r for r in records if "loss" in r]
    assert {"step", "epoch", "loss", "learning_rate", "grad_norm", "tokens_per_second", "host_rss_gib"} <= train[0].keys()
    evals = [r["eval_loss"] for r in records if "eval_loss" in r]
    assert len(evals) == 7  # before training + one per epoch
    assert evals[-1] < evals[0] - 1.0
    assert summary.best_metric == pytest.approx(min(evals), abs=1e-6)
    assert records[-1]["event"] == "end"


def test_early_stopping_stops_and_keeps_best(tmp_path, write_jsonl):
    # Train and validation disagree (same questions, different answers): eval loss soon rises.
    train = write_jsonl(tmp_path / "t.jsonl", [{"instruction": f"q{i % 3}", "output": f"yes {i % 3}"} for i in range(16)])
    val = write_jsonl(tmp_path / "v.jsonl", [{"instruction": f"q{i}", "output": f"no {i} no"} for i in range(3)])
    out = tmp_path / "o"
    summary = tuneforge.train({"train_data": str(train), "validation_data": str(val), "output_dir": str(out),
                               "num_train_epochs": 40, "per_device_train_batch_size": 8, "learning_rate": 3e-2,
                               "lora_dim": 0, "eval_steps": 2, "early_stopping_patience": 2,
                               "warmup_ratio": 0.0, "lr_scheduler_type": "constant"}, progress=False)
    assert summary.stopped_early
    assert summary.steps < 80
    evals = [r for r in _metrics(out) if "eval_loss" in r]
    best = min(evals, key=lambda r: r["eval_loss"])
    assert summary.best_step == best["step"]
    assert all(r["eval_loss"] >= best["eval_loss"] for r in evals[-2:])
    # the saved output is the best model: its eval loss equals the best one
    from tuneforge.models.forward import CausalLMLoss  # noqa: F401  (same forward as training)
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tuneforge.config import from_dict
    from tuneforge.data.collate import pad_batch
    from tuneforge.data.sft import build_sft_data

    tok = AutoTokenizer.from_pretrained(out)
    cfg = from_dict({"train_data": str(train), "validation_data": str(val)})
    batch = pad_batch(build_sft_data(cfg, tok).validation.rows, tok.pad_token_id)
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    with torch.no_grad():
        loss_sum, _ = CausalLMLoss(model)(**batch.model_inputs())
    assert float(loss_sum) / batch.n_trained == pytest.approx(best["eval_loss"], rel=1e-4)


def test_cli_bad_config_exit_code_2_no_traceback(tmp_path, sft_file, capsys):
    code = main(["train", f"train_data={sft_file}", "lora_dimm=8", f"output_dir={tmp_path / 'o'}"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown config key 'lora_dimm' (did you mean 'lora_dim'?)" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()


def test_cli_bad_data_exit_code_2_nothing_written(tmp_path, write_jsonl, capsys):
    data = write_jsonl(tmp_path / "d.jsonl", [{"instruction": "q", "output": "a"}, {"instruction": "q", "output": ""}])
    code = main(["train", f"train_data={data}", f"output_dir={tmp_path / 'o'}"])
    err = capsys.readouterr().err
    assert code == 2 and "d.jsonl, line 2, field 'output': empty" in err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_to_overwrite_finished_run(tmp_path, sft_file, capsys):
    args = ["train", f"train_data={sft_file}", f"output_dir={tmp_path / 'o'}", "max_steps=1", "--no-progress"]
    assert main(args) == 0
    assert main(args) == 2
    assert "already holds a finished run" in capsys.readouterr().err
    assert main(args + ["overwrite_output_dir=true"]) == 0


def test_train_help_lists_every_key_with_default():
    out = subprocess.run([sys.executable, "-m", "tuneforge.cli", "train", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for key in ("learning_rate", "lora_dim", "seq_length", "dpo_beta", "system_prompt", "early_stopping_patience"):
        assert f"  {key} (" in out.stdout
    assert "lora_dim (integer) [32]" in out.stdout


def test_save_steps_minus_one_writes_no_checkpoint(tmp_path, sft_file):
    out = tmp_path / "o"
    tuneforge.train({"train_data": str(sft_file), "output_dir": str(out), "num_train_epochs": 1,
                     "per_device_train_batch_size": 8, "save_steps": -1}, progress=False)
    assert (out / "adapter_model.safetensors").is_file()
    assert not [p for p in out.iterdir() if p.name.startswith("checkpoint-") and p.name != "checkpoint-best"]
    keep = tmp_path / "k"
    tuneforge.train({"train_data": str(sft_file), "output_dir": str(keep), "num_train_epochs": 1,
                     "per_device_train_batch_size": 8}, progress=False)
    assert [p for p in keep.iterdir() if p.name.startswith("checkpoint-") and p.name != "checkpoint-best"]


def test_gradient_checkpointing_auto_turns_on_when_memory_is_short_and_leaves_losses_unchanged(
        tmp_path, sft_file, monkeypatch, capsys):
    from tuneforge.models import memory as mem

    keys = {"train_data": str(sft_file), "max_steps": 3, "per_device_train_batch_size": 4, "lora_dropout": 0.0,
            "logging_steps": 1, "learning_rate": 5e-3}
    plain = tuneforge.train({**keys, "output_dir": str(tmp_path / "plain")}, progress=False)
    assert not plain.model.get_base_model().is_gradient_checkpointing

    roomy = tuneforge.train({**keys, "output_dir": str(tmp_path / "roomy"), "gradient_checkpointing": "auto"},
                            progress=False)
    assert "gradient_checkpointing: auto -> off" in capsys.readouterr().out
    assert not roomy.model.get_base_model().is_gradient_checkpointing

    monkeypatch.setattr(mem, "device_memory", lambda device: mem.DeviceMemory("tiny test device", 1e6, 1e6))
    # a device of 1 MB fits nothing: the machine check would refuse the run, which this test overrides
    tight = tuneforge.train({**keys, "output_dir": str(tmp_path / "tight"), "gradient_checkpointing": "auto",
                             "memory_check": False}, progress=False)
    assert "gradient_checkpointing: auto -> on" in capsys.readouterr().out
    assert tight.model.get_base_model().is_gradient_checkpointing
    losses = lambda out: [r["loss"] for r in _metrics(out) if "loss" in r]  # noqa: E731
    assert losses(tmp_path / "tight") == pytest.approx(losses(tmp_path / "plain"), rel=1e-5)
