"""Checkpoints: complete only with a verified manifest, atomic, rotated safely, restored exactly, fingerprinted."""
import json

import pytest
import torch
from accelerate import Accelerator

from tuneforge.config import from_dict
from tuneforge.data.sft import build_sft_data
from tuneforge.errors import ConfigError
from tuneforge.models.builtin import toy_model
from tuneforge.models.forward import CausalLMLoss
from tuneforge.models.load import attach_lora
from tuneforge.monitor import MetricsLog
from tuneforge.rundir import trim_metrics
from tuneforge.training import checkpoint as ck
from tuneforge.training.loop import TrainingLoop
from tuneforge.training.sft import SFTRecipe


def _loop(tmp_path, tok, data_file, **keys):
    cfg = from_dict({"train_data": str(data_file), "lora_dim": 4, "per_device_train_batch_size": 2,
                     "max_steps": 6, "seed": 5, "save_total_limit": 2, "output_dir": str(tmp_path), **keys})
    data = build_sft_data(cfg, tok)
    model = attach_lora(toy_model(tok), cfg)
    loop = TrainingLoop(cfg, SFTRecipe(data, tok.pad_token_id, 2, packing=False), model, CausalLMLoss(model),
                        Accelerator(cpu=True), tmp_path, MetricsLog(None))
    return cfg, loop


def _train_steps(loop, n):
    for _ in range(n):
        loop._step([[0, 1]])
        loop.state.global_step += 1
        loop.state.step_in_epoch += 1


@pytest.fixture
def data(tmp_path, write_jsonl):
    return write_jsonl(tmp_path / "d.jsonl", [{"instruction": f"q{i}", "output": f"answer {i}"} for i in range(8)])


def _saver(cfg, loop, tmp_path):
    return ck.Checkpointer(cfg, tmp_path, ck.fingerprint(cfg, 1), say=lambda s: None)


def test_save_is_complete_with_a_manifest_and_restores_exactly(tmp_path, toy_tokenizer, data):
    cfg, loop = _loop(tmp_path, toy_tokenizer, data)
    _train_steps(loop, 2)
    loop.window, loop.window_grad = {"loss_sum": 3.5, "tokens": 7.0}, [0.25]
    torch.manual_seed(99)
    path = _saver(cfg, loop, tmp_path).save(loop)
    expected_rand = torch.rand(3)
    assert path.name == "checkpoint-2" and ck.verify(path) is None
    assert not list(tmp_path.glob("*.tmp"))
    manifest = json.loads((path / ck.MANIFEST).read_text())
    assert set(manifest["files"]) == {ck.WEIGHTS, ck.OPTIMIZER, ck.SCHEDULER, ck.STATE, "rng_state_rank0.pt"}

    cfg2, fresh = _loop(tmp_path / "other", toy_tokenizer, data)
    _saver(cfg2, fresh, tmp_path).restore(fresh, path)
    for (n, a), (_, b) in zip(loop.model.named_parameters(), fresh.model.named_parameters()):
        assert torch.equal(a, b), n
    sa, sb = loop.optimizer.state_dict(), fresh.optimizer.state_dict()
    assert sa["state"].keys() == sb["state"].keys() and sa["state"]
    for k in sa["state"]:
        for name in ("step", "exp_avg", "exp_avg_sq"):
            assert torch.equal(sa["state"][k][name], sb["state"][k][name])
    assert fresh.scheduler.last_epoch == loop.scheduler.last_epoch == 2
    assert (fresh.state.global_step, fresh.state.epoch, fresh.state.step_in_epoch) == (2, 0, 2)
    assert fresh.window == {"loss_sum": 3.5, "tokens": 7.0} and fresh.window_grad == [0.25]
    assert torch.equal(torch.rand(3), expected_rand), "the RNG stream continues where it was saved"


def test_corrupt_truncated_or_unfinished_checkpoints_are_skipped(tmp_path, toy_tokenizer, data):
    cfg, loop = _loop(tmp_path, toy_tokenizer, data, save_total_limit=5)
    saver = _saver(cfg, loop, tmp_path)
    for step in (1, 2, 3, 4):
        loop.state.global_step = step
        saver.save(loop)
    # step 4: one byte flipped (same size); step 3: truncated; an unfinished save left a .tmp directory
    opt = tmp_path / "checkpoint-4" / ck.OPTIMIZER
    raw = bytearray(opt.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    opt.write_bytes(bytes(raw))
    weights = tmp_path / "checkpoint-3" / ck.WEIGHTS
    weights.write_bytes(weights.read_bytes()[:100])
    (tmp_path / "checkpoint-5.tmp").mkdir()
    (tmp_path / "checkpoint-5.tmp" / ck.WEIGHTS).write_bytes(b"partial")
    assert "corrupt" in ck.verify(tmp_path / "checkpoint-4")
    assert "truncated" in ck.verify(tmp_path / "checkpoint-3")
    said = []
    assert ck.latest_complete(tmp_path, said.append) == tmp_path / "checkpoint-2"
    assert any("checkpoint-4" in s and "corrupt" in s for s in said)
    assert any("checkpoint-3" in s and "truncated" in s for s in said)
    # no manifest at all (killed between the files and the manifest, then renamed by hand)
    (tmp_path / "checkpoint-2" / ck.MANIFEST).unlink()
    (tmp_path / "checkpoint-1" / ck.MANIFEST).write_text("{not json")
    with pytest.raises(ConfigError, match="no complete checkpoint") as err:
        ck.latest_complete(tmp_path, said.append)
    assert "checkpoint-2: no manifest.json" in str(err.value) and "checkpoint-1: manifest.json is unreadable" in str(err.value)


def test_explicit_path_is_verified(tmp_path, toy_tokenizer, data):
    cfg, loop = _loop(tmp_path, toy_tokenizer, data)
    loop.state.global_step = 3
    path = _saver(cfg, loop, tmp_path).save(loop)
    (path / ck.SCHEDULER).unlink()
    bad = from_dict({**cfg.to_dict(), "resume_from_checkpoint": str(path)})
    with pytest.raises(ConfigError, match="scheduler.pt is missing"):
        ck.resolve_resume(bad, tmp_path, print)


def test_rotation_keeps_the_newest_and_the_best_and_cleans_stale_tmp(tmp_path, toy_tokenizer, data):
    cfg, loop = _loop(tmp_path, toy_tokenizer, data, save_total_limit=2)
    saver = _saver(cfg, loop, tmp_path)
    (tmp_path / "checkpoint-9.tmp").mkdir()
    loop.state.best_step = 1
    for step in (1, 2, 3, 4):
        loop.state.global_step = step
        saver.save(loop)
        # never fewer complete checkpoints than the limit allows once that many were written
        assert len(ck.list_checkpoints(tmp_path)) >= min(step, 2)
    assert [s for s, _ in ck.list_checkpoints(tmp_path)] == [1, 3, 4]
    assert not (tmp_path / "checkpoint-9.tmp").exists()


def test_resaving_the_same_step_replaces_it_atomically(tmp_path, toy_tokenizer, data):
    cfg, loop = _loop(tmp_path, toy_tokenizer, data)
    saver = _saver(cfg, loop, tmp_path)
    loop.state.global_step = 2
    saver.save(loop)
    _train_steps(loop, 1)
    loop.state.global_step = 2
    saver.save(loop)
    assert ck.verify(tmp_path / "checkpoint-2") is None
    assert not (tmp_path / "checkpoint-2.old").exists()


def test_fingerprint_names_what_changed(tmp_path, data, write_jsonl):
    cfg = from_dict({"train_data": str(data), "seq_length": 256})
    fp = ck.fingerprint(cfg, 1)
    same = ck.fingerprint(from_dict({"train_data": str(data), "seq_length": 256, "learning_rate": 5e-4}), 1)
    assert ck.fingerprint_changes(fp, same) == []  # the learning rate may change on resume
    geometry = ck.fingerprint(from_dict({"train_data": str(data), "seq_length": 256, "per_device_train_batch_size": 2,
                                         "gradient_accumulation_steps": 2}), 1)
    assert ck.fingerprint_changes(fp, geometry) == []  # 4 rows per step either way: the data position holds
    changed = ck.fingerprint(from_dict({"train_data": str(data), "seq_length": 128, "lora_dim": 8,
                                        "per_device_train_batch_size": 8}), 2)
    with pytest.raises(ConfigError) as err:
        ck.check_fingerprint(tmp_path, fp, changed, ignore=False, say=print)
    msg = str(err.value)
    for part in ("seq_length: 256 -> 128", "lora_dim: 32 -> 8", "world_size: 1 -> 2",
                 "effective batch (rows per step): 4 -> 16", "resume_ignore_config_changes"):
        assert part in msg
    said = []
    ck.check_fingerprint(tmp_path, fp, changed, ignore=True, say=said.append)
    assert said and "seq_length" in said[0]
    # the data file's contents are part of the run
    data.write_text(data.read_text().replace("answer 3", "answer three"))
    assert [c.split(":")[0] for c in ck.fingerprint_changes(fp, ck.fingerprint(cfg, 1))] == ["train_data contents"]


def test_trim_metrics_drops_records_after_the_checkpoint_and_torn_lines(tmp_path):
    f = tmp_path / "metrics.jsonl"
    lines = [json.dumps({"event": "start", "step": 0})] + [json.dumps({"step": s, "loss": 1.0 / s}) for s in range(1, 6)]
    f.write_text("\n".join(lines) + '\n{"step": 6, "lo')
    assert trim_metrics(f, 3) == 3
    kept = [json.loads(x) for x in f.read_text().splitlines()]
    assert [r["step"] for r in kept] == [0, 1, 2, 3]
