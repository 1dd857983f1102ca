"""KTO parity with an independent implementation: TRL 1.16's KTOTrainer (a test-only dependency).

Both implementations score the *same* token sequences — our unpaired rows with their KL partners, fed
through TRL's own collator and checked equal — with the *same* model object, whose policy weights were
moved away from the reference so rewards and the KL term are not trivially zero. TRL's values are read
from its ``compute_loss`` (the loss) and the metrics it records for that call.
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
from tuneforge.data.kto import build_kto_data  # noqa: E402
from tuneforge.models.builtin import toy_model, toy_tokenizer  # noqa: E402
from tuneforge.models.forward import CausalLMLoss  # noqa: E402
from tuneforge.training.dpo import REFERENCE_BUILDERS  # noqa: E402
from tuneforge.training.kto import KTORecipe, reference_kind  # noqa: E402

BETA, W_D, W_U = 0.1, 1.0, 1.3
ATOL = 1e-4  # the bound; summed log-probs of ~-500 differ in float32 by ~1e-5 between kernels
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# ours -> TRL's name
METRICS = {"rewards/desirable": "rewards/chosen", "rewards/undesirable": "rewards/rejected",
           "rewards/margins": "rewards/margins", "logps/desirable": "logps/chosen",
           "logps/undesirable": "logps/rejected", "kl": "kl"}


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kto-parity")
    rows = [json.loads(x) for x in (EXAMPLES / "data" / "kto_train.jsonl").read_text(encoding="utf-8").splitlines()]
    listed = [r for r in rows if isinstance(r["prompt"], list)][:1]
    rows = listed + [r for r in rows if isinstance(r["prompt"], str)][:4]
    path = tmp / "kto.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    # plus a file of one preference pair (a file has one format): unpaired into a desirable and an undesirable row
    pair = tmp / "pair.jsonl"
    pair.write_text((EXAMPLES / "data" / "dpo_train.jsonl").read_text(encoding="utf-8").splitlines()[7] + "\n",
                    encoding="utf-8")
    tok = toy_tokenizer()
    keys = {"training_strategy": "kto", "train_data": [str(path), str(pair)], "seq_length": 512, "kto_beta": BETA,
            "kto_desirable_weight": W_D, "kto_undesirable_weight": W_U, "per_device_train_batch_size": 7}
    data = build_kto_data(from_dict(keys), tok)
    assert len(data.train) == 7 and 0 < data.train.n_desirable < 7
    return tmp, tok, data, keys


def _trainer(tmp, tok, model, ref_model=None, peft_config=None):
    from datasets import Dataset
    from trl import KTOConfig, KTOTrainer

    args = KTOConfig(output_dir=str(tmp / "trl"), beta=BETA, desirable_weight=W_D, undesirable_weight=W_U,
                     report_to="none", use_cpu=True, precompute_ref_log_probs=False, max_length=None,
                     per_device_train_batch_size=2, disable_dropout=True, bf16=False, fp16=False, seed=0)
    text = Dataset.from_list([{"prompt": "hi", "completion": "a", "label": True},
                              {"prompt": "ho", "completion": "b", "label": False}])
    return KTOTrainer(model=model, ref_model=ref_model, args=args, train_dataset=text, processing_class=tok,
                      peft_config=peft_config)


def _trl_values(trainer, data, rows) -> tuple[float, dict[str, float], torch.Tensor, torch.Tensor]:
    items = [data.train.pairs[i] for i in rows]
    examples = [{"prompt_ids": p.prompt, "completion_ids": p.chosen, "KL_completion_ids": p.rejected,
                 "label": bool(data.train.desirable[i])} for p, i in zip(items, rows)]
    inputs = trainer.data_collator(examples)
    trainer.model.eval()
    trainer._metrics["eval"].clear()
    with torch.no_grad():
        loss = trainer.compute_loss(trainer.model, inputs)
    metrics = {k: v[-1] for k, v in trainer._metrics["eval"].items()}
    return float(loss), metrics, inputs["input_ids"], inputs["KL_input_ids"]


def _ours(recipe: KTORecipe, module, rows):
    batch = recipe.collate(rows, "train")
    module.eval()
    with torch.no_grad():
        _, stats = recipe.loss(module, batch)
    return recipe.summarize({k: float(v) for k, v in stats.items()}), batch.completions.input_ids, batch.kl.input_ids


def _compare(recipe, module, trainer, data):
    for rows in (list(range(7)), [0, 1, 6]):
        ours, ids, kl_ids = _ours(recipe, module, rows)
        loss, theirs, their_ids, their_kl = _trl_values(trainer, data, rows)
        assert torch.equal(ids, their_ids) and torch.equal(kl_ids, their_kl), "the compared sequences must be identical"
        assert abs(ours["loss"] - loss) < ATOL, (rows, ours["loss"], loss)
        for mine, key in METRICS.items():
            assert abs(ours[mine] - theirs[key]) < ATOL * max(1.0, abs(theirs[key])), (rows, mine, ours[mine], theirs[key])
    ours, _, _ = _ours(recipe, module, list(range(7)))
    # the policy really differs from the reference: a non-trivial comparison
    assert abs(ours["rewards/margins"]) > 1e-3 and ours["kl"] > 0


def _perturb(params, scale: float, seed: int):
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in params:
            p.add_(torch.randn(p.shape, generator=gen) * scale)


def _recipe(cfg, data, tok, module, accelerator):
    ref = REFERENCE_BUILDERS[reference_kind(cfg)](cfg, data, tok.pad_token_id, module, accelerator)
    return ref, lambda: KTORecipe(data, tok.pad_token_id, 7, ref, beta=BETA, desirable_weight=W_D,
                                  undesirable_weight=W_U)


@pytest.mark.parametrize("reference", ["precompute", pytest.param("copy", marks=pytest.mark.slow)])
def test_full_matches_trl(setup, reference):
    tmp, tok, data, keys = setup
    data = dataclasses.replace(data, reference_logps={})
    cfg = from_dict({**keys, "lora_dim": 0, "dpo_reference": reference})
    model = toy_model(tok)
    initial = copy.deepcopy(model)
    module = CausalLMLoss(model)
    trainer = _trainer(tmp, tok, model, ref_model=initial)
    _, make = _recipe(cfg, data, tok, module, trainer.accelerator)  # the reference from the starting weights
    # Moving the weights lowers every log-prob of this random model; the KL term must stay above its clamp at 0.
    _perturb(model.parameters(), 0.01, seed=5)
    _compare(make(), module, trainer, data)


def _grads(model, loss) -> dict[str, torch.Tensor]:
    model.zero_grad(set_to_none=True)
    loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad and p.grad is not None}


def _compare_gradients(recipe, module, trainer, data):
    """The gradients of one batch's loss: TRL's compute_loss against ours, same model, train mode (no dropout)."""
    rows = list(range(7))
    batch = recipe.collate(rows, "train")
    module.train()
    loss, _ = recipe.loss(module, batch)
    ours = _grads(module.model, loss / len(rows))  # the loop divides the summed loss by the step's rows
    items = [data.train.pairs[i] for i in rows]
    inputs = trainer.data_collator([{"prompt_ids": p.prompt, "completion_ids": p.chosen, "KL_completion_ids": p.rejected,
                                     "label": bool(data.train.desirable[i])} for p, i in zip(items, rows)])
    trainer.model.train()
    theirs = _grads(trainer.model, trainer.compute_loss(trainer.model, inputs))
    assert ours.keys() == theirs.keys() and len(ours) > 0
    for name in ours:
        assert torch.allclose(ours[name], theirs[name], atol=1e-6, rtol=1e-4), name
    assert max(float(g.abs().max()) for g in ours.values()) > 1e-6  # gradients that are not all zero


def test_lora_matches_trl(setup):
    from peft import LoraConfig

    tmp, tok, data, keys = setup
    data = dataclasses.replace(data, reference_logps={})
    cfg = from_dict({**keys, "lora_dim": 8})
    lora = LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
                      task_type="CAUSAL_LM")
    trainer = _trainer(tmp, tok, toy_model(tok), peft_config=lora)
    model = trainer.model  # TRL wrapped it with the adapter; both implementations use this one object
    module = CausalLMLoss(model)
    _, make = _recipe(cfg, data, tok, module, trainer.accelerator)
    _perturb([p for n, p in model.named_parameters() if "lora_B" in n], 0.05, seed=2)
    _compare(make(), module, trainer, data)
    _compare_gradients(make(), module, trainer, data)
