"""DPO parity with an independent implementation: TRL 1.16's DPOTrainer (a test-only dependency).

Both implementations score the *same* token sequences (ours, fed through TRL's own collator and
checked equal) with the *same* model object, whose policy weights were moved away from the
reference so rewards are not trivially zero. TRL's per-batch values are read from its
``compute_loss`` (the loss) and the metrics it records for that call.
"""
from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from tuneforge.config import from_dict  # noqa: E402
from tuneforge.data.dpo import build_dpo_data  # noqa: E402
from tuneforge.models.builtin import toy_model, toy_tokenizer  # noqa: E402
from tuneforge.models.forward import CausalLMLoss  # noqa: E402
from tuneforge.preference_losses import PREFERENCE_LOSSES  # noqa: E402
from tuneforge.training.dpo import DPORecipe, make_reference  # noqa: E402


BETA = 0.1
ATOL = 1e-5
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
METRICS = ("rewards/chosen", "rewards/rejected", "rewards/margins", "rewards/accuracies", "logps/chosen", "logps/rejected")


def _rows(n: int = 4) -> list[dict]:
    lines = (EXAMPLES / "data" / "dpo_train.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(x) for x in lines]
    # a message-list prompt (with its system message) and plain-string prompts
    listed = [r for r in rows if isinstance(r["prompt"], list)][:1]
    return listed + [r for r in rows if isinstance(r["prompt"], str)][: n - 1]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("parity")
    path = tmp / "pairs.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in _rows()), encoding="utf-8")
    tok = toy_tokenizer()
    cfg_keys = {"training_strategy": "dpo", "train_data": str(path), "seq_length": 512, "dpo_beta": BETA,
                "per_device_train_batch_size": 4}
    data = build_dpo_data(from_dict(cfg_keys), tok)
    assert len(data.train.pairs) == 4
    return tmp, tok, data, cfg_keys


@pytest.fixture
def fresh(setup):
    """The shared setup with no reference log-probs cached from another test's model."""
    tmp, tok, data, keys = setup
    return tmp, tok, dataclasses.replace(data, reference_logps={}), keys


def _trainer(tmp, tok, model, ref_model=None, peft_config=None):
    from datasets import Dataset
    from trl import DPOConfig, DPOTrainer

    args = DPOConfig(output_dir=str(tmp / "trl"), beta=BETA, loss_type=["sigmoid"], report_to="none", use_cpu=True,
                     precompute_ref_log_probs=False, max_length=None, per_device_train_batch_size=4,
                     disable_dropout=True, bf16=False, fp16=False, seed=0)
    text = Dataset.from_list([{"prompt": "hi", "chosen": "a", "rejected": "b"}])
    return DPOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=text, processing_class=tok,
                      peft_config=peft_config)


def _trl_values(trainer, pairs) -> tuple[float, dict[str, float], torch.Tensor]:
    """TRL's loss and metrics for one batch it collates from our token ids."""
    inputs = trainer.data_collator([{"prompt_ids": p.prompt, "chosen_ids": p.chosen, "rejected_ids": p.rejected}
                                    for p in pairs])
    trainer.model.eval()
    trainer._metrics["eval"].clear()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, inputs)
    metrics = {k: v[-1] for k, v in trainer._metrics["eval"].items()}
    return float(loss), metrics, inputs["input_ids"]


def _ours(recipe: DPORecipe, module, rows) -> tuple[dict[str, float], torch.Tensor]:
    batch = recipe.collate(rows, "train")
    module.eval()
    with torch.no_grad():
        _, stats = recipe.loss(module, batch)
    return recipe.summarize({k: float(v) for k, v in stats.items()}), batch.sequences.input_ids


def _compare(recipe, module, trainer, data):
    # the whole batch of 4 pairs (means), then one pair alone (its own values)
    for rows in ([0, 1, 2, 3], [0]):
        ours, our_ids = _ours(recipe, module, rows)
        loss, theirs, their_ids = _trl_values(trainer, [data.train.pairs[i] for i in rows])
        assert torch.equal(our_ids, their_ids), "the compared token sequences must be identical"
        assert abs(ours["loss"] - loss) < ATOL, (rows, ours["loss"], loss)
        for key in METRICS:
            assert abs(ours[key] - theirs[key]) < ATOL * max(1.0, abs(theirs[key])), (rows, key, ours[key], theirs[key])
    # the policy really differs from the reference: a non-trivial comparison
    ours, _ = _ours(recipe, module, [0, 1, 2, 3])
    assert abs(ours["rewards/margins"]) > 1e-3 and abs(ours["loss"] - 0.693147) > 1e-4


def _perturb(params, scale: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=gen) * scale)


@pytest.mark.parametrize("reference", ["precompute", "copy"])
def test_full_matches_trl(fresh, reference):
    tmp, tok, data, keys = fresh
    cfg = from_dict({**keys, "lora_dim": 0, "dpo_reference": reference})
    model = toy_model(tok)
    initial = copy.deepcopy(model)
    module = CausalLMLoss(model)
    trainer = _trainer(tmp, tok, model, ref_model=initial)
    ref = make_reference(cfg, data, tok.pad_token_id, module, trainer.accelerator)  # from the starting weights
    _perturb(model.parameters(), 0.02, seed=1)  # "training" moves the policy only
    recipe = DPORecipe(data, tok.pad_token_id, 4, PREFERENCE_LOSSES["sigmoid"].bind(beta=BETA), ref)
    _compare(recipe, module, trainer, data)


def test_lora_matches_trl(fresh):
    from peft import LoraConfig

    tmp, tok, data, keys = fresh
    cfg = from_dict({**keys, "lora_dim": 8})
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      task_type="CAUSAL_LM")
    trainer = _trainer(tmp, tok, toy_model(tok), peft_config=lora)
    model = trainer.model  # TRL wrapped it with the adapter; both implementations use this one object
    module = CausalLMLoss(model)
    ref = make_reference(cfg, data, tok.pad_token_id, module, trainer.accelerator)
    _perturb([p for n, p in model.named_parameters() if "lora_B" in n], 0.05, seed=2)
    recipe = DPORecipe(data, tok.pad_token_id, 4, PREFERENCE_LOSSES["sigmoid"].bind(beta=BETA), ref)
    _compare(recipe, module, trainer, data)


def test_lora_from_sft_adapter_matches_trl(fresh, tmp_path):
    """Continuing from an adapter: TRL's reference is a frozen copy of that adapter ("ref"); ours is base + the
    same adapter, precomputed before training. Both must differ from the bare base."""
    from peft import LoraConfig, get_peft_model

    tmp, tok, data, keys = fresh
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      task_type="CAUSAL_LM")
    sft = get_peft_model(toy_model(tok), lora)
    _perturb([p for n, p in sft.named_parameters() if "lora_B" in n], 0.05, seed=3)  # "the SFT adapter"
    sft_dir = tmp_path / "sft"
    sft.save_pretrained(str(sft_dir))
    trainer = _trainer(tmp, tok, sft)
    assert "ref" in trainer.model.peft_config  # TRL's reference = copy of the starting adapter
    cfg = from_dict({**keys, "lora_dim": 8, "adapter_name_or_path": str(sft_dir)})
    module = CausalLMLoss(trainer.model)
    ref = make_reference(cfg, data, tok.pad_token_id, module, trainer.accelerator)
    _perturb([p for n, p in trainer.model.named_parameters() if "lora_B" in n and ".default." in n], 0.05, seed=4)
    recipe = DPORecipe(data, tok.pad_token_id, 4, PREFERENCE_LOSSES["sigmoid"].bind(beta=BETA), ref)
    _compare(recipe, module, trainer, data)
