"""`--engine vllm`: the vLLM command worked out for tuneforge runs (vLLM itself needs a GPU; not run here)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tuneforge.cli import main
from tuneforge.data.formats import Message
from tuneforge.errors import ConfigError
from tuneforge.models import inference
from tuneforge.serving.loading import TrustSettings, parse_specs
from tuneforge.serving.vllm import plan_vllm

from .conftest import RUN_SYSTEM, make_lora_run


def _plan(runs, tmp_path, **kw):
    return plan_vllm(parse_specs([str(r) for r in runs], None), host="127.0.0.1", port=8123, api_key=kw.pop("key", None),
                     trust=TrustSettings(), work_dir=tmp_path / "work", say=lambda _line: None, **kw)


def test_adapters_on_one_base_become_lora_modules(served_runs, tmp_path):
    plan = _plan([served_runs["cook"], served_runs["chef"]], tmp_path, key="k3y", extra_args="--gpu-memory-utilization 0.5")
    cmd = plan.command
    assert cmd[1:3] == ["-m", "vllm.entrypoints.openai.api_server"]
    assert cmd[cmd.index("--model") + 1] == str(served_runs["cook"] / "base_model")
    assert "--enable-lora" in cmd and cmd[cmd.index("--max-lora-rank") + 1] == "8"
    modules = cmd[cmd.index("--lora-modules") + 1:cmd.index("--lora-modules") + 3]
    assert modules == [f"cook={served_runs['cook']}", f"chef={served_runs['chef']}"]
    assert cmd[-2:] == ["--gpu-memory-utilization", "0.5"]
    assert "k3y" not in " ".join(cmd) and plan.env == {"VLLM_API_KEY": "k3y"}


def test_the_chat_template_file_renders_what_training_saw(served_runs, tmp_path):
    plan = _plan([served_runs["cook"]], tmp_path)
    source = inference.resolve_source(str(served_runs["cook"]))
    tokenizer = inference.load_tokenizer_for(source)
    messages = [Message("user", "How long does it keep?")]
    trained = tokenizer.decode(inference.prompt_ids(tokenizer, source, messages))
    vllm_text = tokenizer.apply_chat_template([{"role": "user", "content": "How long does it keep?"}],
                                              chat_template=plan.chat_template.read_text(), tokenize=False,
                                              add_generation_prompt=True)
    assert vllm_text == trained and RUN_SYSTEM in vllm_text
    with_system = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert "Be brief." in tokenizer.apply_chat_template(with_system, chat_template=plan.chat_template.read_text(),
                                                        tokenize=False) and RUN_SYSTEM not in \
        tokenizer.apply_chat_template(with_system, chat_template=plan.chat_template.read_text(), tokenize=False)


def test_a_qlora_adapter_is_merged_first(tmp_path):
    run = make_lora_run(tmp_path / "q4", seed=3, load_in_4bit=True)
    plan = _plan([run], tmp_path)
    merged = plan.merged["q4"]
    assert Path(merged).parent == tmp_path / "work" / "merged" and (Path(merged) / "config.json").is_file()
    cmd = plan.command
    assert cmd[cmd.index("--model") + 1] == merged and cmd[cmd.index("--served-model-name") + 1] == "q4"
    assert "--enable-lora" not in cmd
    assert _plan([run], tmp_path).merged["q4"] == merged  # the merge is cached


def test_runs_with_different_system_prompts_cannot_share_a_vllm_process(served_runs, tmp_path):
    other = make_lora_run(tmp_path / "other", seed=4, system_prompt="Something else.")
    with pytest.raises(ConfigError, match="separate processes"):
        _plan([served_runs["cook"], other], tmp_path)


@pytest.mark.skipif(importlib.util.find_spec("vllm") is not None, reason="vLLM is installed here")
def test_without_vllm_installed_the_command_says_how_to_get_it(served_runs, capsys):
    assert main(["serve", str(served_runs["cook"]), "--engine", "vllm"]) == 2
    assert "pip install vllm" in capsys.readouterr().err
