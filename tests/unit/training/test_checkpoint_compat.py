"""A checkpoint written before ``TrainState.tokens_seen`` was removed (it was never counted) still resumes."""
import json

from accelerate import Accelerator

from tuneforge.config import from_dict
from tuneforge.data.sft import build_sft_data
from tuneforge.models.builtin import toy_model
from tuneforge.models.forward import CausalLMLoss
from tuneforge.models.load import attach_lora
from tuneforge.monitor import MetricsLog
from tuneforge.training import checkpoint as ck
from tuneforge.training.loop import TrainingLoop
from tuneforge.training.sft import SFTRecipe


def _loop(out, tok, data_file):
    cfg = from_dict({"train_data": str(data_file), "lora_dim": 4, "per_device_train_batch_size": 2,
                     "max_steps": 6, "seed": 5, "output_dir": str(out)})
    model = attach_lora(toy_model(tok), cfg)
    loop = TrainingLoop(cfg, SFTRecipe(build_sft_data(cfg, tok), tok.pad_token_id, 2, packing=False), model,
                        CausalLMLoss(model), Accelerator(cpu=True), out, MetricsLog(None))
    return cfg, loop


def test_an_old_train_state_with_tokens_seen_restores(tmp_path, toy_tokenizer, write_jsonl):
    data = write_jsonl(tmp_path / "d.jsonl", [{"instruction": f"q{i}", "output": f"answer {i}"} for i in range(8)])
    cfg, loop = _loop(tmp_path / "run", toy_tokenizer, data)
    loop._step([[0, 1]])
    loop.state.global_step, loop.state.step_in_epoch = 1, 1
    path = ck.Checkpointer(cfg, tmp_path / "run", ck.fingerprint(cfg, 1), say=lambda s: None).save(loop)
    state = json.loads((path / ck.STATE).read_text())
    assert "tokens_seen" not in state["train_state"]
    state["train_state"]["tokens_seen"] = 1234  # as a checkpoint of an earlier version holds it
    (path / ck.STATE).write_text(json.dumps(state, indent=1))
    ck.write_manifest(path, 1)
    assert ck.verify(path) is None

    cfg2, fresh = _loop(tmp_path / "other", toy_tokenizer, data)
    ck.Checkpointer(cfg2, tmp_path / "other", ck.fingerprint(cfg2, 1), say=lambda s: None).restore(fresh, path)
    assert (fresh.state.global_step, fresh.state.step_in_epoch) == (1, 1)
    assert not hasattr(fresh.state, "tokens_seen")
