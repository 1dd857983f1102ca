"""Everything reused is verified (issue 11, case 4): manifests by shape, the best-model snapshot by its own
manifest and step, and a resume restores the snapshot that matches its own record of the best step."""
import json

import pytest
import torch
from accelerate import Accelerator
from safetensors.torch import load_file

from tuneforge.config import from_dict
from tuneforge.data.sft import build_sft_data
from tuneforge.errors import ConfigError
from tuneforge.models.builtin import toy_model
from tuneforge.models.forward import CausalLMLoss
from tuneforge.models.load import attach_lora
from tuneforge.monitor import MetricsLog
from tuneforge.run_outputs import load_trainable, save_trainable
from tuneforge.training import checkpoint as ck
from tuneforge.training.loop import TrainingLoop
from tuneforge.training.sft import SFTRecipe


@pytest.fixture
def data(tmp_path, write_jsonl):
    return write_jsonl(tmp_path / "d.jsonl", [{"instruction": f"q{i}", "output": f"answer {i}"} for i in range(8)])


def _loop(out, tok, data_file):
    cfg = from_dict({"train_data": str(data_file), "lora_dim": 4, "per_device_train_batch_size": 2,
                     "max_steps": 6, "seed": 5, "save_total_limit": 5, "output_dir": str(out)})
    model = attach_lora(toy_model(tok), cfg)
    loop = TrainingLoop(cfg, SFTRecipe(build_sft_data(cfg, tok), tok.pad_token_id, 2, packing=False), model,
                        CausalLMLoss(model), Accelerator(cpu=True), out, MetricsLog(None))
    return cfg, loop, ck.Checkpointer(cfg, out, ck.fingerprint(cfg, 1), say=lambda s: None)


def _step(loop, best: bool, checkpointer):
    """One training step; when ``best``, the step's evaluation improved and the loop wrote the snapshot."""
    loop._step([[0, 1]])
    loop.state.global_step += 1
    loop.state.step_in_epoch += 1
    if best:
        loop.state.best_step, loop.state.best_metric = loop.state.global_step, 1.0 / loop.state.global_step
        save_trainable(loop.model, loop.best_path)
    checkpointer(loop)


@pytest.mark.parametrize("manifest", [{"files": []}, {"files": {"x": 5}}, {"files": {}}, [], {"files": None},
                                      {"files": {"trainer_state.json": {"size": "1", "sha256": "0" * 64}}},
                                      {"files": {"../../etc/passwd": {"size": 1, "sha256": "0" * 64}}}])
def test_manifests_of_the_wrong_shape_are_damaged_not_tracebacks(tmp_path, manifest):
    good = tmp_path / "checkpoint-2"
    good.mkdir()
    (good / ck.STATE).write_text("{}")
    (good / ck.MANIFEST).write_text(json.dumps(manifest))
    assert "malformed" in ck.verify(good)
    with pytest.raises(ConfigError, match="no complete checkpoint") as err:
        ck.latest_complete(tmp_path, print)
    assert "checkpoint-2: manifest.json is malformed" in str(err.value)


def test_a_consistent_manifest_over_a_malformed_state_is_damaged(tmp_path, toy_tokenizer, data):
    _, loop, saver = _loop(tmp_path, toy_tokenizer, data)
    loop.state.global_step = 2
    path = saver.save(loop)
    (path / ck.STATE).write_text(json.dumps({"nothing": "here"}))
    ck.write_manifest(path, 2)  # the hashes match the damaged state file
    assert ck.verify(path) == "trainer_state.json is malformed"


def test_resume_restores_the_best_snapshot_of_its_own_checkpoint(tmp_path, toy_tokenizer, data):
    """Killed after a new best snapshot (step 4) but before its checkpoint: the resumed run's best is step 2,
    and checkpoint-best must hold step 2's weights again (not the killed run's step 4)."""
    _, loop, saver = _loop(tmp_path, toy_tokenizer, data)
    _step(loop, best=False, checkpointer=saver)
    _step(loop, best=True, checkpointer=saver)
    path = saver.save(loop)  # checkpoint-2: best is step 2
    step2 = load_file(str(path / ck.WEIGHTS))
    _step(loop, best=False, checkpointer=saver)
    _step(loop, best=True, checkpointer=saver)  # the snapshot now holds step 4 ... and the run is killed here
    assert ck.best_snapshot_step(tmp_path / ck.BEST_DIR) == 4

    _, fresh, saver2 = _loop(tmp_path, toy_tokenizer, data)
    saver2.restore(fresh, path)
    assert fresh.state.best_step == 2
    assert ck.best_snapshot_step(tmp_path / ck.BEST_DIR) == 2
    snapshot = load_file(str(tmp_path / ck.BEST_DIR / ck.WEIGHTS))
    assert snapshot.keys() == step2.keys() and all(torch.equal(snapshot[k], step2[k]) for k in step2)


def test_flipped_bytes_in_the_snapshot_are_never_output(tmp_path, toy_tokenizer, data):
    _, loop, saver = _loop(tmp_path, toy_tokenizer, data)
    _step(loop, best=True, checkpointer=saver)
    path = saver.save(loop)
    weights = tmp_path / ck.BEST_DIR / ck.WEIGHTS
    raw = bytearray(weights.read_bytes())
    raw[-20] ^= 0xFF
    weights.write_bytes(bytes(raw))
    with pytest.raises(ConfigError, match="damaged"):
        load_trainable(loop.model, weights)  # what the loop does at the end of a run
    _, fresh, saver2 = _loop(tmp_path, toy_tokenizer, data)
    saver2.restore(fresh, path)  # a resume puts the verified copy back
    load_trainable(fresh.model, weights)
    assert ck.verify(tmp_path / ck.BEST_DIR) is None


def test_a_snapshot_without_its_manifest_is_not_trusted(tmp_path, toy_tokenizer, data):
    _, loop, _ = _loop(tmp_path, toy_tokenizer, data)
    save_trainable(loop.model, loop.best_path)  # written, but killed before the manifest
    with pytest.raises(ConfigError, match="not trusted"):
        load_trainable(loop.model, loop.best_path)


def test_a_changed_learning_rate_takes_effect_on_resume(tmp_path, toy_tokenizer, data):
    """What is recorded is what runs: the new learning rate applies from the resumed step (issue 11, case 8)."""
    cfg, loop, saver = _loop(tmp_path, toy_tokenizer, data)
    for _ in range(2):
        _step(loop, best=False, checkpointer=saver)
    path = saver.save(loop)
    lr_before = loop.scheduler.get_last_lr()[0]
    changed = from_dict({**cfg.to_dict(), "learning_rate": cfg.learning_rate / 4})
    model = attach_lora(toy_model(toy_tokenizer), changed)
    fresh = TrainingLoop(changed, loop.recipe, model, CausalLMLoss(model), Accelerator(cpu=True), tmp_path,
                         MetricsLog(None))
    saver.restore(fresh, path)
    assert fresh.scheduler.get_last_lr()[0] == pytest.approx(lr_before / 4)
    assert all(g["lr"] == pytest.approx(lr_before / 4) for g in fresh.optimizer.param_groups)
    same = TrainingLoop(cfg, loop.recipe, model, CausalLMLoss(model), Accelerator(cpu=True), tmp_path, MetricsLog(None))
    saver.restore(same, path)
    assert same.scheduler.get_last_lr()[0] == lr_before  # unchanged config: bit-identical schedule
