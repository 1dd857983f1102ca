"""Gradient accumulation is normalised by trained tokens over the whole step: 2 x 4 rows == 1 x 8 rows."""
import pytest
import torch
from accelerate import Accelerator

from tuneforge.config import from_dict
from tuneforge.data.sft import build_sft_data
from tuneforge.models.builtin import toy_model
from tuneforge.models.forward import CausalLMLoss
from tuneforge.monitor import MetricsLog
from tuneforge.training.loop import TrainingLoop
from tuneforge.training.sft import SFTRecipe


def _grads_after_one_step(tmp_path, tok, data_file, batch, accumulation):
    cfg = from_dict({"train_data": str(data_file), "lora_dim": 0, "per_device_train_batch_size": batch,
                     "gradient_accumulation_steps": accumulation, "max_steps": 1, "seed": 3})
    data = build_sft_data(cfg, tok)
    model = toy_model(tok)
    module = CausalLMLoss(model)
    loop = TrainingLoop(cfg, SFTRecipe(data, tok.pad_token_id, batch, packing=False), model, module,
                        Accelerator(cpu=True), tmp_path, MetricsLog(None))
    captured = {}

    def capture(*args, **kwargs):
        captured.update({n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None})

    loop.optimizer.step = capture
    rows = list(range(8))
    sums, grad_norm, finite = loop._step([rows[i:i + batch] for i in range(0, 8, batch)])
    assert finite
    return captured, sums


def test_two_micro_batches_equal_one_large_batch(tmp_path, toy_tokenizer, write_jsonl):
    # Very different answer lengths: averaging per micro-batch would weight tokens unequally.
    rows = [{"instruction": f"q{i}", "output": ("long answer " * (1 + 7 * (i % 2))) + str(i)} for i in range(8)]
    f = write_jsonl(tmp_path / "d.jsonl", rows)
    big, big_sums = _grads_after_one_step(tmp_path, toy_tokenizer, f, batch=8, accumulation=1)
    small, small_sums = _grads_after_one_step(tmp_path, toy_tokenizer, f, batch=4, accumulation=2)
    assert big and big.keys() == small.keys()
    for name in big:
        torch.testing.assert_close(small[name], big[name], atol=1e-6, rtol=1e-5, msg=name)
    assert small_sums["tokens"] == big_sums["tokens"]
    assert small_sums["loss_sum"] == pytest.approx(big_sums["loss_sum"], rel=1e-6)
