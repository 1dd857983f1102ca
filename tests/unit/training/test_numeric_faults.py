"""Numeric faults: a NaN/inf loss or gradient skips the step without touching weights or optimizer state;
N in a row stop the run with exit code 3, keeping the last good checkpoint. A step with no trained token is
skipped too (never a silent zero loss that still moves the weights through momentum and weight decay)."""
import json

import pytest
import torch
from accelerate import Accelerator

import tuneforge
from tuneforge.cli import main
from tuneforge.config import from_dict
from tuneforge.data.sft import build_sft_data
from tuneforge.errors import TrainingAborted
from tuneforge.models.builtin import toy_model
from tuneforge.models.forward import CausalLMLoss
from tuneforge.models.load import attach_lora
from tuneforge.monitor import MetricsLog
from tuneforge.training import checkpoint as ck
from tuneforge.training.loop import TrainingLoop
from tuneforge.training.sft import SFTRecipe


@pytest.fixture
def data(tmp_path, write_jsonl):
    return write_jsonl(tmp_path / "d.jsonl", [{"instruction": f"q{i}", "output": f"answer {i}"} for i in range(8)])


def _loop(tmp_path, tok, data, **keys):
    cfg = from_dict({"train_data": str(data), "lora_dim": 4, "per_device_train_batch_size": 2, "max_steps": 4,
                     "weight_decay": 0.1, "seed": 1, **keys})
    model = attach_lora(toy_model(tok), cfg)
    recipe = SFTRecipe(build_sft_data(cfg, tok), tok.pad_token_id, 2, packing=False)
    return TrainingLoop(cfg, recipe, model, CausalLMLoss(model), Accelerator(cpu=True), tmp_path, MetricsLog(None))


def _snapshot(loop):
    params = {n: p.detach().clone() for n, p in loop.model.named_parameters() if p.requires_grad}
    opt = {k: {n: v.clone() for n, v in st.items()} for k, st in loop.optimizer.state_dict()["state"].items()}
    return params, opt


def _assert_untouched(before, after):
    (pa, oa), (pb, ob) = before, after
    for n in pa:
        assert torch.equal(pa[n], pb[n]), n
    assert oa.keys() == ob.keys()
    for k in oa:
        for n in oa[k]:
            assert torch.equal(oa[k][n], ob[k][n]), (k, n)  # exp_avg, exp_avg_sq and the step counter


def _nan_loss(recipe):
    real = recipe.loss

    def loss(module, batch):
        value, stats = real(module, batch)
        value = value * float("nan")
        return value, {**stats, "loss_sum": float("nan")}
    return loss


def test_nan_loss_skips_the_step_and_leaves_weights_and_adamw_state_untouched(tmp_path, toy_tokenizer, data):
    loop = _loop(tmp_path, toy_tokenizer, data)
    loop._step([[0, 1]])  # one good step so AdamW has state (step counter = 1)
    before = _snapshot(loop)
    assert all(st["step"].item() == 1 for st in loop.optimizer.state_dict()["state"].values())
    real = loop.recipe.loss
    loop.recipe.loss = _nan_loss(loop.recipe)
    _, grad_norm, applied = loop._step([[2, 3]])
    assert not applied and loop.last_skip == "non-finite loss or gradient norm"
    assert loop.state.consecutive_nonfinite == 1 and loop.state.skipped_steps == 1
    _assert_untouched(before, _snapshot(loop))
    assert all(p.grad is None for p in loop.trainable)  # nothing left to leak into the next step
    loop.recipe.loss = real
    _, _, applied = loop._step([[2, 3]])
    assert applied and loop.state.consecutive_nonfinite == 0


def test_non_finite_gradient_with_finite_loss_is_skipped(tmp_path, toy_tokenizer, data):
    loop = _loop(tmp_path, toy_tokenizer, data)
    loop._step([[0, 1]])
    before = _snapshot(loop)
    handle = loop.trainable[0].register_hook(lambda g: torch.full_like(g, float("inf")))
    sums, grad_norm, applied = loop._step([[2, 3]])
    handle.remove()
    assert not applied and sums["loss_sum"] > 0 and not torch.isfinite(torch.tensor(grad_norm))
    _assert_untouched(before, _snapshot(loop))


def test_a_step_without_trained_tokens_is_skipped_not_a_silent_zero(tmp_path, toy_tokenizer, data):
    loop = _loop(tmp_path, toy_tokenizer, data)
    loop._step([[0, 1]])
    before = _snapshot(loop)
    loop.recipe.units = lambda batch: 0  # every label masked
    lr_step = loop.scheduler.last_epoch
    sums, _, applied = loop._step([[2, 3]])
    assert not applied and "no trained token" in loop.last_skip and sums == {}
    assert loop.state.consecutive_nonfinite == 0  # not a numeric fault
    assert loop.scheduler.last_epoch == lr_step + 1  # the schedule stays aligned with global_step
    _assert_untouched(before, _snapshot(loop))


def test_consecutive_faults_abort_with_exit_code_3_and_keep_the_last_good_checkpoint(tmp_path, data, monkeypatch):
    from tuneforge.training.sft import SFTRecipe as Recipe

    real = Recipe.loss
    calls = {"n": 0}

    def loss(self, module, batch):
        calls["n"] += 1
        value, stats = real(self, module, batch)
        if calls["n"] > 2:  # steps 1-2 fine, every step after NaN
            return value * float("nan"), {**stats, "loss_sum": float("nan")}
        return value, stats

    monkeypatch.setattr(Recipe, "loss", loss)
    out = tmp_path / "o"
    keys = {"train_data": str(data), "output_dir": str(out), "per_device_train_batch_size": 2, "lora_dim": 4,
            "max_steps": 20, "save_steps": 2, "logging_steps": 1, "max_consecutive_nonfinite_steps": 3}
    with pytest.raises(TrainingAborted, match="3 consecutive steps") as err:
        tuneforge.train(keys, progress=False)
    assert err.value.exit_code == 3
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    skipped = [r for r in records if r.get("event") == "skipped_step"]
    assert [r["step"] for r in skipped] == [3, 4, 5] and [r["consecutive"] for r in skipped] == [1, 2, 3]
    # checkpoint-4 was written during the faults but holds the untouched weights of step 2
    latest = ck.latest_complete(out, print)
    assert latest is not None and ck.read_state(latest)["train_state"]["global_step"] == 4
    from safetensors.torch import load_file

    a, b = load_file(str(out / "checkpoint-2" / ck.WEIGHTS)), load_file(str(latest / ck.WEIGHTS))
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not (out / "tuneforge_config.yaml").exists()


def test_cli_exit_code_3_on_repeated_nan(tmp_path, data, monkeypatch, capsys):
    from tuneforge.training.sft import SFTRecipe as Recipe

    real = Recipe.loss
    monkeypatch.setattr(Recipe, "loss", lambda self, module, batch: (
        real(self, module, batch)[0] * float("nan"), {"loss_sum": float("nan"), "tokens": 1.0}))
    code = main(["train", f"train_data={data}", f"output_dir={tmp_path / 'o'}", "max_steps=5", "lora_dim=4",
                 "max_consecutive_nonfinite_steps=2", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3
    assert "2 consecutive steps had a non-finite loss" in err and "Traceback" not in err
