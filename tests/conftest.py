"""Shared fixtures: everything offline, tiny, and built inside the test session."""
from __future__ import annotations

import atexit
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Nothing a test run writes lands in the user's home: the tokenized-data cache and the service home go to a
# directory of this session (subprocesses inherit the variables).
_SESSION_DIR = tempfile.mkdtemp(prefix="tuneforge-tests-")
atexit.register(shutil.rmtree, _SESSION_DIR, ignore_errors=True)
os.environ.setdefault("TUNEFORGE_DATA_CACHE", os.path.join(_SESSION_DIR, "data-cache"))
os.environ.setdefault("TUNEFORGE_HOME", os.path.join(_SESSION_DIR, "home"))

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = REPO / "examples"


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(name="write_jsonl")
def write_jsonl_fixture():
    return write_jsonl


@pytest.fixture(scope="session")
def toy_tokenizer():
    from tuneforge.models.builtin import toy_tokenizer

    return toy_tokenizer()


@pytest.fixture(scope="session")
def pad_eos_tokenizer(tmp_path_factory):
    """A real-vocabulary tokenizer whose pad token equals its EOS token (like many Llama/Qwen releases)."""
    from transformers import AutoTokenizer

    from tuneforge.models.builtin import TOKENIZER_DIR

    tok = AutoTokenizer.from_pretrained(str(TOKENIZER_DIR))
    tok.pad_token = tok.eos_token
    return tok


@pytest.fixture
def data(tmp_path):
    """Path of a one-row SFT file, for config checks that only need train_data to exist."""
    p = tmp_path / "d.jsonl"
    p.write_text('{"instruction": "q", "output": "a"}\n')
    return str(p)


@pytest.fixture
def sft_rows():
    return [
        {"instruction": f"Question {i}: what is {i} plus {i}?", "input": "", "output": f"It is {2 * i}."}
        for i in range(24)
    ]


@pytest.fixture
def sft_file(tmp_path, sft_rows):
    return write_jsonl(tmp_path / "train.jsonl", sft_rows)
