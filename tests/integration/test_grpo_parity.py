"""GRPO loss parity with TRL 1.16's GRPOTrainer (a test-only dependency).

Both sides get the *same* rollouts — prompt ids, sampled completion ids (right-padded, different lengths),
advantages, and where the case needs them the sampling-time ("old", mu = 2) and reference (grpo_beta > 0)
log-probs — and two identical copies of the toy model. TRL's loss comes from its own ``_compute_loss``
(its log-prob forward at the sampling temperature, clipping, KL and normalisation); ours from the GRPO
recipe's ``completion_logps`` and ``grpo_loss.policy_loss`` divided by the units the loop divides by.
Loss and every gradient must agree within 1e-5, per loss type, with and without KL, mu = 1 and 2.
"""
from __future__ import annotations

import pytest
import torch

trl = pytest.importorskip("trl")
datasets = pytest.importorskip("datasets")

from tuneforge.grpo_loss import policy_loss  # noqa: E402
from tuneforge.models.builtin import save_toy, toy_model, toy_tokenizer  # noqa: E402
from tuneforge.models.forward import CausalLMLoss  # noqa: E402
from tuneforge.training.grpo import RolloutBatch, completion_logps, rollout_sequences  # noqa: E402

ATOL = 1e-5
G, PROMPTS, MAX_LEN = 4, 2, 6
CASES = [(loss_type, beta, mu) for loss_type in ("grpo", "bnpo", "dr_grpo", "dapo")
         for beta in (0.0, 0.04) for mu in (1, 2)]



@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models: one intra-op thread is faster than two, and much faster on busy shared cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)

@pytest.fixture(scope="module")
def tok():
    return toy_tokenizer()


@pytest.fixture(scope="module")
def trainers(tok, tmp_path_factory):
    """TRL trainers built once per (beta, temperature); the loss type is switched per case (its attribute)."""
    made: dict = {}

    def get(loss_type, beta, temperature):
        key = (beta, temperature)
        if key not in made:
            made[key] = _trl_trainer(tok, tmp_path_factory.mktemp("trl"), loss_type, beta, 2, temperature)
        trainer = made[key]
        trainer.loss_type = loss_type
        trainer.model.zero_grad(set_to_none=True)
        return trainer

    return get


@pytest.fixture(scope="module")
def rollouts(tok):
    """Equal-length prompts (TRL scores left-padded prompts with unshifted positions; ours are unpadded) and
    completions of different lengths; advantages of both signs; old/ref log-probs off the current ones."""
    gen = torch.Generator().manual_seed(0)
    prompt = tok("What is 2 + 3?", add_special_tokens=False)["input_ids"]
    other = list(reversed(prompt))  # a second prompt of the same length
    assert len(prompt) == len(other)
    prompts = [prompt] * G + [other] * G
    vocab = len(tok)
    lengths = [6, 3, 5, 1, 6, 2, 4, 6]
    completions = [torch.randint(5, vocab, (n,), generator=gen).tolist() for n in lengths]
    advantages = torch.randn(PROMPTS * G, generator=gen)
    noise_old = 0.3 * torch.randn(PROMPTS * G, MAX_LEN, generator=gen)  # large enough to reach the clip bounds
    noise_ref = 0.5 * torch.randn(PROMPTS * G, MAX_LEN, generator=gen)
    return prompts, completions, advantages, noise_old, noise_ref


def _trl_trainer(tok, tmp_path, loss_type, beta, mu, temperature):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer

    def zero_reward(prompts, completions, **kwargs):
        return [0.0] * len(prompts)

    args = GRPOConfig(output_dir=str(tmp_path), per_device_train_batch_size=PROMPTS * G, num_generations=G,
                      max_completion_length=MAX_LEN, beta=beta, epsilon=0.2, epsilon_high=0.28, loss_type=loss_type,
                      num_iterations=mu, temperature=temperature, report_to=[], use_cpu=True, bf16=False, disable_dropout=True,
                      logging_steps=1)
    # grpo_beta > 0 makes TRL load a reference model by name: hand it the toy saved as a directory (its reference
    # log-probs are then given in the inputs, as ours are)
    model = str(save_toy(tmp_path / "toy")) if beta > 0 else toy_model(tok)
    trainer = GRPOTrainer(model=model, reward_funcs=[zero_reward], args=args,
                          train_dataset=Dataset.from_dict({"prompt": ["a", "b"]}), processing_class=tok)
    trainer.current_gradient_accumulation_steps = 1
    return trainer


def _ours(tok, prompts, completions):
    module = CausalLMLoss(toy_model(tok))
    module.train()
    seqs, cmask = rollout_sequences(prompts, completions, tok.pad_token_id)
    return module, seqs, cmask


@pytest.mark.parametrize("loss_type,beta,mu", CASES)
def test_loss_and_gradients_match_trl(tok, rollouts, trainers, loss_type, beta, mu):
    temperature = 0.7 if loss_type == "dapo" else 1.0  # once at a temperature other than 1
    prompts, completions, advantages, noise_old, noise_ref = rollouts
    module, seqs, cmask = _ours(tok, prompts, completions)
    width = cmask.shape[1]
    assert width == MAX_LEN
    with torch.no_grad():
        current = completion_logps(module, RolloutBatch(seqs, cmask, cmask, advantages), temperature)
    old = (current + noise_old) * cmask if mu > 1 else None
    ref = (current + noise_ref) * cmask if beta > 0 else None

    batch = RolloutBatch(seqs, cmask, cmask, advantages, old, ref)
    out = policy_loss(completion_logps(module, batch, temperature), old, ref, advantages, cmask, loss_type=loss_type,
                      beta=beta, epsilon=0.2, epsilon_high=0.28, max_completion_length=MAX_LEN)
    ours = out.loss_sum / out.units  # what the loop backpropagates for one micro-batch on one process
    ours.backward()
    our_grads = {n: p.grad for n, p in module.model.named_parameters() if p.grad is not None}

    trainer = trainers(loss_type, beta, temperature)
    model = trainer.model
    model.train()
    prompt_ids = torch.tensor(prompts)
    completion_ids = torch.full((len(completions), width), tok.pad_token_id, dtype=torch.long)
    for i, c in enumerate(completions):
        completion_ids[i, :len(c)] = torch.tensor(c)
    inputs = {"prompt_ids": prompt_ids, "prompt_mask": torch.ones_like(prompt_ids), "completion_ids": completion_ids,
              "completion_mask": cmask, "advantages": advantages, "num_items_in_batch": cmask.sum()}
    if old is not None:
        inputs["old_per_token_logps"] = old
    if ref is not None:
        inputs["ref_per_token_logps"] = ref
    theirs = trainer._compute_loss(model, inputs)
    theirs.backward()
    assert torch.allclose(ours.detach(), theirs.detach(), atol=ATOL), (float(ours), float(theirs))
    their_grads = {n: p.grad for n, p in model.named_parameters() if p.grad is not None}
    assert set(our_grads) == set(their_grads)
    for name, g in our_grads.items():
        assert torch.allclose(g, their_grads[name], atol=ATOL), (name, float((g - their_grads[name]).abs().max()))
    if mu > 1 or beta > 0:  # the case exercised what it claims: ratios off 1 (clipping reachable), a KL term
        assert not torch.allclose(out.loss_sum, torch.zeros(()))
