"""Monitoring: the curves image at evaluations and at the end, the memory estimate in the start record,
TensorBoard refused clearly when its package is missing; the estimate against measured peak memory."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

PNG = b"\x89PNG\r\n\x1a\n"


def test_run_writes_curves_and_memory_estimate(lora_run):
    image = lora_run / "training_curves.png"
    assert image.read_bytes()[:8] == PNG and image.stat().st_size > 10_000
    records = [json.loads(line) for line in (lora_run / "metrics.jsonl").read_text().splitlines()]
    start = records[0]
    assert start["event"] == "start"
    assert start["memory_estimate_total_gib"] > 0 and start["device_memory_total_gib"] > 0
    assert all("host_rss_gib" in r for r in records)


def test_tensorboard_missing_is_a_config_error_before_weights_load(tools_model_dir, tools_data, tmp_path, monkeypatch):
    import tuneforge
    from tuneforge.errors import ConfigError

    # Simulate a machine without the package (the test extras install it for the test below).
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)

    with pytest.raises(ConfigError, match="pip install tensorboard"):
        tuneforge.train(dict(model=str(tools_model_dir), train_data=str(tools_data["sft"]),
                             output_dir=str(tmp_path / "tb"), report_to="tensorboard"), progress=False)
    assert not (tmp_path / "tb").exists()


def test_tensorboard_events_are_written(tools_model_dir, tools_data, tmp_path):
    import tuneforge

    out = tmp_path / "tb"
    tuneforge.train(dict(model=str(tools_model_dir), train_data=str(tools_data["sft"]), output_dir=str(out),
                         report_to="tensorboard", max_steps=2, lora_dim=4), progress=False)
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))


PROBE = textwrap.dedent("""
    import json, resource, sys
    import torch, transformers, peft, accelerate  # noqa: F401  imported before the baseline
    import tuneforge
    from tuneforge.training import run  # noqa: F401
    from tuneforge.monitor import host_memory
    cfg = json.loads(sys.argv[1])
    base = host_memory()["host_rss_gib"]
    tuneforge.train(cfg, progress=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
    start = json.loads(open(cfg["output_dir"] + "/metrics.jsonl").readline())
    print(json.dumps({"increase": peak - base, "peak": peak, "estimate": start["memory_estimate_total_gib"]}))
""")


@pytest.fixture(scope="module")
def mid_model(tmp_path_factory):
    """A 61M-parameter Llama (hidden 768, 8 layers) and rows longer than seq_length=256."""
    import random

    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    from tuneforge.models.builtin import TOKENIZER_DIR

    out = tmp_path_factory.mktemp("mid-model")
    tok = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    tok.save_pretrained(str(out))
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=768, intermediate_size=2048, num_hidden_layers=8,
                      num_attention_heads=12, tie_word_embeddings=True, eos_token_id=tok.eos_token_id,
                      pad_token_id=tok.pad_token_id, bos_token_id=None)
    LlamaForCausalLM(cfg).save_pretrained(str(out))
    words = "apple river stone cloud seven orange paper window garden silver".split()
    rnd = random.Random(0)
    rows = [{"instruction": f"Say words {i}", "output": " ".join(rnd.choice(words) for _ in range(400))} for i in range(8)]
    (out / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return out


@pytest.mark.slow
@pytest.mark.parametrize("keys", [dict(lora_dim=0, per_device_train_batch_size=2),  # weights/grads/AdamW dominate
                                  dict(lora_dim=16, per_device_train_batch_size=4)],  # activations dominate
                         ids=["full", "lora"])
def test_estimate_within_20_percent_of_measured_peak_rss(mid_model, tmp_path, keys):
    cfg = dict(model=str(mid_model), train_data=str(mid_model / "data.jsonl"), output_dir=str(tmp_path / "run"),
               max_steps=2, seq_length=256, logging_steps=1, **keys)
    done = subprocess.run([sys.executable, "-c", PROBE, json.dumps(cfg)], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    # the estimate covers the whole process (its runtime baseline included), like the peak RSS
    ratio = result["peak"] / result["estimate"]
    assert 0.8 <= ratio <= 1.2, result
