"""A plain model directory and an adapter trained on it: one model in memory, both served, rows of one
batch using the adapter or the bare base."""
from __future__ import annotations

import asyncio

import openai
import pytest

from tuneforge.cli import main
from tuneforge.models import builtin

from .conftest import ThreadServer, make_lora_run

PROMPT = "What is in the pantry?"


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    from tuneforge.serving.app import ServerSettings, create_app
    from tuneforge.serving.loading import TrustSettings, load_models, parse_specs

    root = tmp_path_factory.mktemp("shared-base")
    plain = builtin.save_toy(root / "toy-model")
    run = make_lora_run(root / "pantry", seed=5, base=plain)
    models = load_models(parse_specs([str(plain), str(run)], None), trust=TrustSettings(), log=lambda _line: None)
    app = create_app(models, ServerSettings(max_batch_size=4, default_max_tokens=16))
    with ThreadServer(app) as server:
        yield server, models, plain, run


def test_the_base_is_loaded_once(shared):
    _server, models, _plain, _run = shared
    assert models[0].backbone is models[1].backbone
    assert [m.kind for m in models] == ["model", "lora-adapter"]


def test_each_answers_like_tuneforge_generate_alone_and_mixed(shared, capsys):
    server, _models, plain, run = shared
    expected = {}
    for name, path in (("toy-model", plain), ("pantry", run)):
        capsys.readouterr()
        assert main(["generate", str(path), "--prompt", PROMPT, "--max-new-tokens", "10", "--temperature", "0"]) == 0
        expected[name] = capsys.readouterr().out.strip()
    assert expected["toy-model"] != expected["pantry"]

    async def ask(client, name):
        response = await client.chat.completions.create(model=name, messages=[{"role": "user", "content": PROMPT}],
                                                        max_tokens=10, temperature=0)
        return name, response.choices[0].message.content.strip()

    async def mixed():
        async with openai.AsyncOpenAI(base_url=server.base_url + "/v1", api_key="x", max_retries=0, timeout=60) as c:
            return await asyncio.gather(*(ask(c, n) for n in ("toy-model", "pantry", "toy-model", "pantry")))

    answers = asyncio.run(mixed())
    assert all(text == expected[name] for name, text in answers)
