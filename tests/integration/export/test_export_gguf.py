"""`tuneforge export --format gguf`: round trips through transformers' GGUF loader for every dtype on the
built-in model (a LoRA run) and on a tiny Qwen2 with a trained BPE tokenizer; template, special tokens,
refusals, adapter-only, never overwriting, and a file that fails verification is not kept."""
from __future__ import annotations

import json
import shutil

import pytest
import torch
import yaml

from tuneforge.cli import main

from .conftest import QWEN_DEFAULT_SYSTEM, RUN_SYSTEM

pytest.importorskip("gguf")
DTYPES = ("f32", "f16", "bf16", "q8_0")
TEXTS = ["Hello wörld,  how's it going?\n\n 12345 <|im_end|> don't", "本草堂的客服助手 — goji berries!", "  x\ty"]


def _gguf(directory):
    files = list(directory.glob("*.gguf"))
    assert len(files) == 1, files
    return files[0]


def _reader(directory):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = _gguf(directory)
    model = AutoModelForCausalLM.from_pretrained(str(directory), gguf_file=path.name, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(str(directory), gguf_file=path.name)


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=torch.tensor([ids])).logits[0]


def _as_qlora_run(run, tmp_path):
    """The run as if trained with load_in_4bit (what export reads of it is the saved config)."""
    copy = tmp_path / "qlora-run"
    shutil.copytree(run, copy)
    cfg = yaml.safe_load((copy / "tuneforge_config.yaml").read_text())
    cfg["load_in_4bit"] = True
    (copy / "tuneforge_config.yaml").write_text(yaml.safe_dump(cfg))
    return copy


@pytest.mark.parametrize("dtype", DTYPES)
def test_toy_lora_run_round_trips(toy_lora_run, tmp_path, capsys, dtype):
    """q8_0 is exported from a QLoRA run (the adapter merged into the float32 base, as merge does)."""
    run = _as_qlora_run(toy_lora_run, tmp_path) if dtype == "q8_0" else toy_lora_run
    out = tmp_path / "gguf"
    flags = []
    if dtype == "f16":  # also: --overwrite replaces a non-empty directory (after verification)
        out.mkdir()
        (out / "old.txt").write_text("old export")
        flags = ["--overwrite"]
    assert main(["export", str(run), "--format", "gguf", "--out", str(out), "--dtype", dtype, *flags]) == 0
    assert not (out / "old.txt").exists()
    said = capsys.readouterr().out
    assert "independent reader" in said and "identical to the run's" in said
    assert ("4-bit quantized base" in said and "never from quantized weights" in said) == (dtype == "q8_0")
    report = json.loads((out / "export_report.json").read_text())
    assert all(r["file_diff"] <= 1e-5 and r["drift"] <= report["drift_tolerance"] for r in report["rows"])
    if dtype in ("f32", "f16"):
        assert all(r["greedy_same"] for r in report["rows"])
    if dtype != "f32":
        return
    # Checked here again, independently of the exporter's own verification: base + adapter (peft) vs the file.
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    base = AutoModelForCausalLM.from_pretrained(str(toy_lora_run / "base_model"), dtype=torch.float32)
    adapted = PeftModel.from_pretrained(base, str(toy_lora_run)).eval()
    run_tok = AutoTokenizer.from_pretrained(str(toy_lora_run))
    model, tok = _reader(out)
    messages = [{"role": "user", "content": "How many apples in crate 3?"}]
    ids = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=False)
    expected = run_tok.apply_chat_template([{"role": "system", "content": RUN_SYSTEM}] + messages,
                                           add_generation_prompt=True, tokenize=True, return_dict=False)
    assert ids == expected  # the run's system prompt is the embedded template's default
    torch.testing.assert_close(_logits(model, ids), _logits(adapted, ids), atol=1e-5, rtol=0)
    modelfile = (out / "Modelfile").read_text()
    assert f"FROM ./{_gguf(out).name}" in modelfile and RUN_SYSTEM in modelfile
    assert 'PARAMETER stop "<|im_end|>"' in modelfile and "<|im_start|>assistant" in modelfile
    readme = (out / "README.md").read_text()
    assert "llama-cli -m" in readme and "ollama create" in readme and "lms import" in readme


@pytest.mark.parametrize("dtype", ["f32", "q8_0", pytest.param("f16", marks=pytest.mark.slow),
                                   pytest.param("bf16", marks=pytest.mark.slow)])  # all four on the toy run
def test_qwen2_directory_round_trips_with_its_tokenizer(qwen2_dir, tmp_path, capsys, dtype):
    from gguf import GGUFReader
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = tmp_path / "gguf"
    assert main(["export", str(qwen2_dir), "--out", str(out), "--dtype", dtype]) == 0
    fields = GGUFReader(str(_gguf(out))).fields
    assert fields["general.architecture"].contents() == "qwen2"
    assert fields["tokenizer.ggml.pre"].contents() == "qwen2"
    assert len(fields["tokenizer.ggml.merges"].contents()) > 2000
    if dtype not in ("f32", "q8_0"):
        return
    source_tok = AutoTokenizer.from_pretrained(str(qwen2_dir))
    model, tok = _reader(out)
    for text in TEXTS:
        assert tok(text, add_special_tokens=False)["input_ids"] == source_tok(text, add_special_tokens=False)["input_ids"]
    assert (tok.eos_token_id, tok.pad_token_id, tok.bos_token_id) == (source_tok.eos_token_id, source_tok.pad_token_id, None)
    messages = [{"role": "user", "content": "Where is the tea?"}]
    rendered = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered == source_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert QWEN_DEFAULT_SYSTEM in rendered  # no run system prompt: the template's own default stays
    assert f'SYSTEM """{QWEN_DEFAULT_SYSTEM}"""' in (out / "Modelfile").read_text()
    ids = tok(rendered, add_special_tokens=False)["input_ids"]
    original = AutoModelForCausalLM.from_pretrained(str(qwen2_dir), dtype=torch.float32).eval()
    diff = (_logits(model, ids) - _logits(original, ids)).abs().max().item()
    scale = _logits(original, ids).abs().max().item()
    assert diff <= (1e-5 if dtype == "f32" else 5e-2 * max(1.0, scale)), diff


def test_unsupported_architecture_is_refused_before_any_work(tmp_path, capsys):
    from transformers import GPT2Config

    model_dir = tmp_path / "gpt2"
    model_dir.mkdir()
    GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100).save_pretrained(str(model_dir))  # no weights at all
    out = tmp_path / "out"
    assert main(["export", str(model_dir), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "'gpt2'" in err and "Llama" in err and "Qwen2" in err and "Qwen3" in err and "builtin:toy" in err
    assert not out.exists() and not list(tmp_path.glob(".out*"))


def test_adapter_only_writes_a_llama_cpp_lora_adapter(toy_lora_run, tmp_path, capsys):
    from gguf import GGUFReader
    from gguf.quants import dequantize
    from transformers import AutoModelForCausalLM

    from tuneforge.export.tensors import to_llama_rope_rows

    out = tmp_path / "adapter"
    assert main(["export", str(toy_lora_run), "--out", str(out), "--adapter-only"]) == 0
    reader = GGUFReader(str(_gguf(out)))
    assert reader.fields["general.type"].contents() == "adapter"
    assert reader.fields["adapter.type"].contents() == "lora"
    assert reader.fields["adapter.lora.alpha"].contents() == 16.0
    tensors = {t.name: dequantize(t.data, t.tensor_type) for t in reader.tensors}
    targets = json.loads((toy_lora_run / "adapter_config.json").read_text())["target_modules"]
    assert len(tensors) == 2 * len(targets) * 2  # per adapted layer of each of the 2 blocks: lora_a + lora_b
    a, b = (torch.tensor(tensors[f"blk.1.attn_q.weight.lora_{x}"]) for x in "ab")
    assert a.shape == (8, 128) and b.shape == (128, 8)
    # base + alpha/rank * B @ A, in llama.cpp's Q row order, is the merged model's Q weight in that order
    base = AutoModelForCausalLM.from_pretrained(str(toy_lora_run / "base_model"), dtype=torch.float32)
    merged_dir = tmp_path / "merged"
    assert main(["merge", str(toy_lora_run), "--output", str(merged_dir)]) == 0
    merged = AutoModelForCausalLM.from_pretrained(str(merged_dir), dtype=torch.float32)
    q = "model.layers.1.self_attn.q_proj.weight"
    delta = to_llama_rope_rows(merged.state_dict()[q] - base.state_dict()[q], 4)
    assert delta.abs().max() > 1e-4
    torch.testing.assert_close(16.0 / 8 * (b @ a), delta, atol=1e-6, rtol=1e-4)
    modelfile = (out / "Modelfile").read_text()
    assert f"ADAPTER ./{_gguf(out).name}" in modelfile and "FROM ../adapter-base/base_model-f16.gguf" in modelfile


def test_existing_output_is_never_overwritten_without_the_flag(toy_lora_run, tmp_path, capsys):
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    assert main(["export", str(toy_lora_run), "--out", str(busy)]) == 2
    assert "--overwrite" in capsys.readouterr().err and (busy / "keep.txt").read_text() == "mine"
    a_file = tmp_path / "file.gguf"
    a_file.write_text("mine")
    assert main(["export", str(toy_lora_run), "--out", str(a_file), "--overwrite"]) == 2
    assert a_file.read_text() == "mine"
    assert main(["export", str(toy_lora_run), "--out", str(toy_lora_run)]) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["busy", "file.gguf"]  # nothing half-written left


def test_a_file_that_fails_verification_is_not_kept(toy_lora_run, tmp_path, capsys, monkeypatch):
    from tuneforge.export import tensors

    monkeypatch.setattr(tensors, "to_llama_rope_rows", lambda weight, n_heads: weight)  # forget llama.cpp's Q/K order
    out = tmp_path / "out"
    assert main(["export", str(toy_lora_run), "--out", str(out), "--dtype", "f32"]) == 1
    said = capsys.readouterr()
    assert "failed verification" in said.err and "file check" in said.err
    assert not out.exists() and not list(tmp_path.iterdir())


@pytest.mark.slow
def test_qwen3_with_its_own_head_dim_round_trips(tmp_path, capsys):
    """Qwen3's head_dim is not hidden/heads: the file carries attention.key_length/value_length and q/k norms."""
    from gguf import GGUFReader
    from transformers import AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

    from tuneforge.models.builtin import TOKENIZER_DIR

    tok = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    # head_dim 128 as in every Qwen3 release: transformers' GGUF reader does not read key_length for qwen3
    cfg = Qwen3Config(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=1, head_dim=128, max_position_embeddings=512,
                      tie_word_embeddings=True, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(3)
    model_dir = tmp_path / "qwen3"
    Qwen3ForCausalLM(cfg).save_pretrained(str(model_dir))
    tok.save_pretrained(str(model_dir))
    out = tmp_path / "gguf"
    assert main(["export", str(model_dir), "--out", str(out), "--dtype", "f32"]) == 0
    fields = GGUFReader(str(_gguf(out))).fields
    assert fields["general.architecture"].contents() == "qwen3" and fields["qwen3.attention.key_length"].contents() == 128
    assert "blk.0.attn_q_norm.weight" in {t.name for t in GGUFReader(str(_gguf(out))).tensors}


@pytest.mark.slow
def test_llama_cpp_greedy_matches_tuneforge_generate(toy_lora_run, tmp_path, capsys):
    """llama.cpp itself (llama-cpp-python, a source build) loads the export, tokenizes the run's prompt as the run
    does, and its greedy answer is `tuneforge generate --temperature 0`'s."""
    llama_cpp = pytest.importorskip("llama_cpp")
    from transformers import AutoTokenizer

    out = tmp_path / "gguf"
    assert main(["export", str(toy_lora_run), "--out", str(out), "--dtype", "f32"]) == 0
    prompt = "How many apples in crate 3?"
    capsys.readouterr()
    assert main(["generate", str(toy_lora_run), "--prompt", prompt, "--temperature", "0", "--max-new-tokens", "8"]) == 0
    expected = capsys.readouterr().out.strip()
    run_tok = AutoTokenizer.from_pretrained(str(toy_lora_run))
    messages = [{"role": "system", "content": RUN_SYSTEM}, {"role": "user", "content": prompt}]
    text = run_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    llm = llama_cpp.Llama(model_path=str(_gguf(out)), n_ctx=256, verbose=False)
    ids = llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)
    assert ids == run_tok(text, add_special_tokens=False)["input_ids"]
    answer = llm.create_completion(ids, max_tokens=8, temperature=0.0, top_k=1, repeat_penalty=1.0)
    assert answer["choices"][0]["text"].replace("<|im_end|>", "").strip() == expected
