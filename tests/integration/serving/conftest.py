"""Two LoRA runs on the built-in toy base, served together by one in-thread server on 127.0.0.1.

The run directories are laid out as ``tuneforge train`` writes them (adapter + tokenizer + ``base_model/`` +
``tuneforge_config.yaml``), with adapters made directly by peft (random, non-zero LoRA weights, one seed per
run) so the suite spends no time training and each adapter visibly changes the answers.
"""
from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
import yaml

RUN_SYSTEM = "You answer as a ship's cook."


def make_lora_run(out: Path, seed: int, system_prompt: str | None = RUN_SYSTEM, base: Path | None = None,
                  **settings) -> Path:
    """A toy LoRA run directory: what `tuneforge train` leaves for model=builtin:toy, lora_dim=8 (or for
    model=BASE, a directory holding the toy, when ``base`` is given)."""
    import torch
    from peft import LoraConfig, get_peft_model

    from tuneforge.models import builtin
    from tuneforge.rundir import CONFIG_FILE

    base_dir = base or builtin.save_toy(out / "base_model")
    tokenizer = builtin.toy_tokenizer()
    lora = LoraConfig(r=8, lora_alpha=16, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      init_lora_weights=False, task_type="CAUSAL_LM")
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = get_peft_model(builtin.toy_model(tokenizer), lora)
    model.peft_config["default"].base_model_name_or_path = str(base_dir.resolve())
    model.save_pretrained(str(out), safe_serialization=True)
    tokenizer.save_pretrained(str(out))
    config = dict(training_strategy="sft", model=str(base) if base else "builtin:toy", lora_dim=8, lora_alpha=16.0, load_in_4bit=False,
                  load_in_8bit=False, apply_chat_template=True, system_prompt=system_prompt, trust_remote_code=False,
                  output_dir=str(out))
    config.update(settings)
    (out / CONFIG_FILE).write_text(yaml.safe_dump(config, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def served_runs(tmp_path_factory) -> dict[str, Path]:
    """{"cook": LoRA run, "chef": a second LoRA run on the same toy base}."""
    root = tmp_path_factory.mktemp("serve-runs")
    return {"cook": make_lora_run(root / "cook", seed=1), "chef": make_lora_run(root / "chef", seed=2)}


class ThreadServer:
    """uvicorn in a thread on a free loopback port; stopped with a bounded wait."""

    def __init__(self, app):
        import uvicorn

        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", timeout_graceful_shutdown=2))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> "ThreadServer":
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the test server did not start within 30 s")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)
        self.sock.close()


@pytest.fixture(scope="module")
def server(served_runs):
    from tuneforge.serving.app import ServerSettings, create_app
    from tuneforge.serving.loading import TrustSettings, load_models, parse_specs

    specs = parse_specs([str(served_runs["cook"]), str(served_runs["chef"])], None)
    models = load_models(specs, trust=TrustSettings(), max_model_len=2048, log=lambda _line: None)
    app = create_app(models, ServerSettings(max_batch_size=8, max_concurrent=32, default_max_tokens=32))
    with ThreadServer(app) as running:
        yield running


@pytest.fixture(scope="module")
def client(server):
    from openai import OpenAI

    with OpenAI(base_url=server.base_url + "/v1", api_key="unused", max_retries=0, timeout=60) as c:
        yield c
