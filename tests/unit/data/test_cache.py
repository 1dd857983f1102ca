"""The tokenized cache: built once, reused, rebuilt on any change or damage, identical for any worker count."""
from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest

from tuneforge.data import build
from tuneforge.data.cache import MANIFEST, list_entries
from tuneforge.data.encode import EncodeSettings
from tuneforge.errors import DataError

SFT = EncodeSettings("sft", 64)


def _rows(n: int, start: int = 0) -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"question {i}? " + "why " * (i % 5)},
                          {"role": "assistant", "content": f"answer {i}. " + "because " * (i % 9)}]}
            for i in range(start, start + n)]


def _open(path, tok, settings=SFT, **kw):
    return build.open_or_build(str(path), tok, settings, **kw)


def _arrays(store) -> dict[str, np.ndarray]:
    return {k: np.array(v) for k, v in store.arrays.items()}


def _same(a, b) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert np.array_equal(a[k], b[k]), k


def test_second_open_reuses_the_entry_without_encoding(tmp_path, write_jsonl, toy_tokenizer, monkeypatch):
    path = write_jsonl(tmp_path / "d.jsonl", _rows(10))
    first = _open(path, toy_tokenizer)
    assert first.built_here and first.manifest["rows"] == 10

    def no_encoding(*args):
        raise AssertionError("re-tokenized although the cache entry is valid")

    monkeypatch.setattr(build, "encode_chunk", no_encoding)
    again = _open(path, toy_tokenizer)
    assert not again.built_here
    _same(_arrays(first), _arrays(again))
    assert again.item(3) == first.item(3)


@pytest.mark.parametrize("change", ["seq_length", "system_prompt", "apply_chat_template", "on_bad_rows",
                                    "file", "chat_template", "truncation_rule"])
def test_every_key_input_rebuilds(tmp_path, write_jsonl, toy_tokenizer, monkeypatch, change):
    import copy

    from tuneforge.data import encode

    path = write_jsonl(tmp_path / "d.jsonl", _rows(6))
    assert _open(path, toy_tokenizer).built_here
    tok, settings, kw = toy_tokenizer, SFT, {}
    if change == "seq_length":
        settings = EncodeSettings("sft", 65)
    elif change == "system_prompt":
        settings = EncodeSettings("sft", 64, system_prompt="Be brief.")
    elif change == "apply_chat_template":
        settings = EncodeSettings("sft", 64, apply_chat_template=False)
    elif change == "on_bad_rows":
        kw = {"on_bad_rows": "skip"}
    elif change == "file":
        write_jsonl(path, _rows(6, start=1))
    elif change == "chat_template":
        tok = copy.deepcopy(toy_tokenizer)
        tok.chat_template = toy_tokenizer.chat_template.replace("<|im_start|>", "<|im_start|> ")
    elif change == "truncation_rule":
        monkeypatch.setattr(encode, "PROMPT_FLOOR_FRACTION", 0.25)
    assert _open(path, tok, settings, **kw).built_here
    assert len(list_entries(build.cache_root(None))) == 2


@pytest.mark.parametrize("damage", ["flip a token", "truncate", "no manifest", "bad manifest"])
def test_damaged_entry_is_rebuilt_not_used(tmp_path, write_jsonl, toy_tokenizer, damage):
    path = write_jsonl(tmp_path / "d.jsonl", _rows(8))
    good = _open(path, toy_tokenizer)
    expected = _arrays(good)
    entry = good.entry
    del good
    ids = entry / "ids.bin"
    if damage == "flip a token":
        raw = bytearray(ids.read_bytes())
        raw[5] ^= 0xFF
        ids.write_bytes(bytes(raw))
    elif damage == "truncate":
        ids.write_bytes(ids.read_bytes()[:-4])
    elif damage == "no manifest":
        (entry / MANIFEST).unlink()
    else:
        (entry / MANIFEST).write_text("{not json", encoding="utf-8")
    again = _open(path, toy_tokenizer)
    assert again.built_here
    _same(expected, _arrays(again))


def test_bad_row_leaves_no_entry_and_names_file_line_field(tmp_path, write_jsonl, toy_tokenizer, monkeypatch):
    monkeypatch.setattr(build, "CHUNK_ROWS", 3)
    rows = _rows(12)
    rows[9] = {"messages": [{"role": "user", "content": "q"}, {"role": "robot", "content": "a"}]}
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    for workers in (1, 2):
        with pytest.raises(DataError) as err:
            _open(path, toy_tokenizer, workers=workers)
        assert (err.value.path, err.value.line, err.value.field) == (str(path), 10, "messages[1].role")
    root = build.cache_root(None)
    assert list_entries(root) == [] and not [p for p in root.iterdir() if ".tmp-" in p.name]


def test_parallel_encoding_equals_one_worker(tmp_path, write_jsonl, toy_tokenizer, monkeypatch):
    monkeypatch.setattr(build, "CHUNK_ROWS", 4)
    rows = _rows(30)
    rows[7] = {"messages": [{"role": "user", "content": "long " * 200}, {"role": "assistant", "content": "x"}]}
    rows[20] = "not an object"
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    one = _open(path, toy_tokenizer, cache_dir=str(tmp_path / "one"), workers=1, on_bad_rows="skip")
    two = _open(path, toy_tokenizer, cache_dir=str(tmp_path / "two"), workers=2, on_bad_rows="skip")
    _same(_arrays(one), _arrays(two))
    assert one.manifest["report"] == two.manifest["report"] == {
        "dropped": {"no trained token after truncation": 1, "expected a JSON object, got str": 1},
        "examples": {"no trained token after truncation": f"{path}:8", "expected a JSON object, got str": f"{path}:21"}}
    assert one.manifest["rows"] == 28


def _open_in_child(path, tokenizer, queue):
    queue.put(_open(path, tokenizer, workers=1).built_here)


def test_concurrent_processes_build_once_and_share(tmp_path, write_jsonl, toy_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", _rows(200))
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    procs = [ctx.Process(target=_open_in_child, args=(path, toy_tokenizer, queue)) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert sorted(queue.get(timeout=5) for _ in procs) == [False, False, True]


def test_manifest_records_the_key_inputs(tmp_path, write_jsonl, toy_tokenizer):
    path = write_jsonl(tmp_path / "d.jsonl", _rows(3))
    store = _open(path, toy_tokenizer, EncodeSettings("sft", 64, system_prompt="S"))
    inputs = json.loads((store.entry / MANIFEST).read_text())["key_inputs"]
    for key in ("files", "tokenizer", "chat_template", "strategy", "seq_length", "apply_chat_template",
                "system_prompt", "truncation", "on_bad_rows", "encoder_version"):
        assert key in inputs
    assert inputs["system_prompt"] == "S" and list(inputs["files"]) == [str(path)]


def test_unwritable_cache_dir_is_a_config_error(tmp_path, write_jsonl, toy_tokenizer):
    from tuneforge.errors import ConfigError

    path = write_jsonl(tmp_path / "d.jsonl", _rows(2))
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    with pytest.raises(ConfigError, match="data_cache_dir=.*cannot write"):
        _open(path, toy_tokenizer, cache_dir=str(blocker / "cache"))
