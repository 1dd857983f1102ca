"""Remote code runs only on the user's own word (issue 11, case 7); chat survives Ctrl-C (issue 12, case 6)."""
import io
import json

import pytest
import yaml

from tuneforge.errors import ConfigError
from tuneforge.models import inference
from tuneforge.tools.chat import run_chat


@pytest.fixture
def downloaded_run(tmp_path):
    """A run directory someone else made, whose saved config asks for remote code."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "adapter_config.json").write_text(json.dumps({"base_model_name_or_path": "builtin:toy"}))
    (run / "tuneforge_config.yaml").write_text(yaml.safe_dump({"trust_remote_code": True, "allow_pickle_weights": True}))
    return run


def test_a_run_directory_cannot_turn_on_remote_code(downloaded_run):
    with pytest.raises(ConfigError, match="trust_remote_code: true.*--trust-remote-code"):
        inference.resolve_source(str(downloaded_run))
    source = inference.resolve_source(str(downloaded_run), trust_remote_code=True)  # the user's own flag
    assert source.trust_remote_code is True and source.allow_pickle_weights is False


@pytest.mark.parametrize("command", [["generate", "--prompt", "hi"], ["chat"], ["merge", "--output", "m"]])
def test_the_tools_refuse_it_before_loading_anything(downloaded_run, tmp_path, command, capsys, monkeypatch):
    from tuneforge.cli import main

    monkeypatch.chdir(tmp_path)
    args = [command[0], str(downloaded_run), *command[1:]]
    assert main(args) == 2
    assert "--trust-remote-code" in capsys.readouterr().err


def test_a_source_never_takes_the_flag_from_the_run_config(downloaded_run):
    cfg = yaml.safe_load((downloaded_run / "tuneforge_config.yaml").read_text())
    cfg["trust_remote_code"] = False
    (downloaded_run / "tuneforge_config.yaml").write_text(yaml.safe_dump(cfg))
    source = inference.resolve_source(str(downloaded_run))
    assert source.trust_remote_code is False and source.allow_pickle_weights is False


class _Session:
    """Stands in for ChatSession: the first answer is interrupted by Ctrl-C, the second completes."""

    def __init__(self):
        self.out, self.history, self.calls = io.StringIO(), [], 0
        self.system_prompt, self.source = None, inference.ModelSource("builtin:toy")

    def reply(self, text):
        self.calls += 1
        if self.calls == 1:
            self.out.write("partial ans")
            raise KeyboardInterrupt
        self.history += [text, "answer"]
        self.out.write("answer\n")
        return "answer"

    def shown_history(self):
        return "\n".join(map(str, self.history))


def test_ctrl_c_stops_the_answer_and_keeps_the_chat():
    session = _Session()
    assert run_chat(session, io.StringIO("first\nsecond\n"), interactive=False) == 0
    assert session.calls == 2 and session.history == ["second", "answer"]
    assert "answer stopped" in session.out.getvalue()


def test_ctrl_d_ends_on_a_new_line_and_the_banner_names_the_model():
    session = _Session()
    run_chat(session, io.StringIO(""), interactive=True, banner="chat with builtin:toy + adapter runs/x")
    text = session.out.getvalue()
    assert text.startswith("chat with builtin:toy + adapter runs/x\n") and text.endswith(">>> \n")
