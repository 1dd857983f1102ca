"""report_to: wandb in offline mode — the run file W&B writes (``run-<id>.wandb``) read back record by record
with W&B's own protobuf schema (wandb.proto.wandb_internal_pb2.Record; the file's framing, LevelDB's log
format, is read here: wandb 0.31 ships no Python reader of it). Every metrics.jsonl field must be in the
history at its step, the resolved config in the run's config, the summary in the summary. Without offline
mode or credentials the config is refused before anything runs."""
from __future__ import annotations

import json
import struct
import time

import pytest

import tuneforge
from tuneforge.errors import ConfigError

pytest.importorskip("wandb", reason="the wandb extra (pip install 'tuneforge[wandb]') is not installed")
from wandb.proto import wandb_internal_pb2 as pb  # noqa: E402

BLOCK = 32768  # LevelDB log blocks; a record's header is crc32 (4), length (2), type (1)
FULL, LAST = 1, 4


def read_wandb_file(path):
    """Every Record of a .wandb file, in order (records split over blocks are joined)."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:7]
    pos, pending, found = 7, b"", []
    while pos + 7 <= len(data):
        if BLOCK - pos % BLOCK < 7:  # a block's tail too short for a header is padding
            pos += BLOCK - pos % BLOCK
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            found.append(record)
            pending = b""
    return found


def _finished_records(path, timeout=30.0):
    """The file's records once W&B's service has written the run's exit record: run.finish() returns before
    the service's writer has flushed the file (seen with wandb 0.31: only the 7-byte header right after)."""
    deadline = time.monotonic() + timeout
    while True:
        records = read_wandb_file(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def _items(updates):
    return {(u.key or "/".join(u.nested_key)): json.loads(u.value_json) for u in updates}


def test_offline_run_file_holds_every_record_config_and_summary(tmp_path, run_keys, monkeypatch, helpers):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    monkeypatch.setenv("WANDB_PROJECT", "from-env")
    out = tmp_path / "run"
    keys = {**run_keys, "output_dir": str(out), "report_to": ["wandb"], "run_name": "w1"}
    summary = tuneforge.train(keys, progress=False)

    saved = json.loads((out / "trackers.json").read_text())["wandb"]
    assert saved["project"] == "from-env" and saved["name"] == "w1" and saved["extra"]["mode"] == "offline"
    assert saved["view"].startswith("wandb sync ") and saved["url"] is None
    files = list((out / "wandb").glob(f"offline-run-*-{saved['id']}/run-{saved['id']}.wandb"))
    assert len(files) == 1
    records = _finished_records(files[0])

    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.run_id == saved["id"] and run.display_name == "w1" and run.project == "from-env"
    config = {**_items(run.config.update)}
    for r in records:
        if r.WhichOneof("record_type") == "config":
            config.update(_items(r.config.update))
    resolved = tuneforge.config.load_config(**keys).to_dict()
    for key, value in resolved.items():
        assert config[key] == value, key

    history: dict[int, dict] = {}
    for r in records:
        if r.WhichOneof("record_type") == "history":
            items = _items(r.history.item)
            history.setdefault(int(items["_step"]), {}).update(items)
    expected: dict[int, dict] = {}
    for record in helpers.read_records(out):
        expected.setdefault(record["step"], {}).update(helpers.numeric_fields(record))
    assert history.keys() == expected.keys()
    for step, fields in expected.items():
        for key, value in fields.items():
            assert history[step][key] == pytest.approx(value, rel=1e-9), (step, key)

    final = {}
    for r in records:
        if r.WhichOneof("record_type") == "summary":
            final.update(_items(r.summary.update))
    assert final["steps"] == 3 and final["train_loss"] == pytest.approx(summary.train_loss)
    assert final["output_dir"] == str(out.resolve())


def test_without_offline_mode_or_credentials_nothing_runs(tmp_path, run_keys, monkeypatch):
    for var in ("WANDB_MODE", "WANDB_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    with pytest.raises(ConfigError, match="WANDB_MODE=offline"):
        tuneforge.train({**run_keys, "output_dir": str(tmp_path / "o"), "report_to": "wandb"}, progress=False)
    assert not (tmp_path / "o").exists()


class _Crash(Exception):
    pass


@pytest.mark.slow
def test_resumed_run_continues_the_same_wandb_run(tmp_path, run_keys, monkeypatch, helpers):
    from tuneforge.training import checkpoint as ck

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.delenv("WANDB_DIR", raising=False)
    out = tmp_path / "run"
    keys = {**run_keys, "output_dir": str(out), "report_to": "wandb", "max_steps": 6, "save_steps": 2}
    original_call = ck.Checkpointer.__call__

    def call(self, loop):
        original_call(self, loop)
        if loop.state.global_step == 5:  # one step past checkpoint-4: step 5 is redone after the resume
            raise _Crash()

    monkeypatch.setattr(ck.Checkpointer, "__call__", call)
    with pytest.raises(_Crash):
        tuneforge.train(keys, progress=False)
    monkeypatch.setattr(ck.Checkpointer, "__call__", original_call)
    first = json.loads((out / "trackers.json").read_text())["wandb"]["id"]
    tuneforge.train({**keys, "resume_from_checkpoint": "auto"}, progress=False)
    assert json.loads((out / "trackers.json").read_text())["wandb"]["id"] == first
    files = sorted((out / "wandb").glob(f"offline-run-*-{first}/run-{first}.wandb"))
    assert len(files) == 2  # one offline file per process, the same run id: `wandb sync` joins them
    records = _finished_records(files[-1])
    run = next(r.run for r in records if r.WhichOneof("record_type") == "run")
    assert run.run_id == first
    steps = {int(_items(r.history.item)["_step"]) for r in records if r.WhichOneof("record_type") == "history"}
    assert steps == {4, 5, 6}  # the resume record at the checkpoint's step, then the redone and new steps
