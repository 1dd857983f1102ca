"""``eval_generation_steps``: while a run trains, greedy answers to its first ``eval_generation_rows``
validation prompts, scored against their references (BLEU and ROUGE-L, as ``tuneforge eval`` scores them)
every that many optimizer steps and at the last step.

The scores go to ``metrics.jsonl`` as ``eval_generation_bleu`` / ``eval_generation_rouge_l`` (with the step,
like every record), the answers beside the references to ``generations.jsonl`` (one line per evaluation), so
a monitoring page can chart the one and show the other (a resumed run drops the lines of the steps it
redoes, as it does in metrics.jsonl). The command layer hands ``generation_hook`` to the
run (``run_training(..., step_hooks=...)``): the engine never imports this package.

One process only: with several processes the weights may be sharded, and generation would have to run in
lockstep on all of them; the run says so and trains without it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ..data.templates import encode_prompt, with_system_prompt
from ..models import inference
from ..rundir import GENERATIONS_FILE, METRICS_FILE, trim_metrics
from ..models.generation import generate_batch
from .data import GenerationItem, validation_items
from .metrics import score_corpus

SCORED = ("bleu", "rouge_l")
BATCH = 8


@dataclass
class GenerationProbe:
    """Called after every optimizer step (before the checkpointer); acts at the steps it is due."""

    every: int
    items: list[GenerationItem]
    prompts: list[list[int]]
    tokenizer: Any
    max_new_tokens: int
    path: Path

    def due(self, loop: Any) -> bool:
        step = loop.state.global_step
        return step % self.every == 0 or step >= loop.total_steps

    def answers(self, model: torch.nn.Module, device: torch.device, autocast: Any) -> list[str]:
        stop = inference.stop_token_ids(model, self.tokenizer)
        pad = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else stop[0]
        kwargs = dict(max_new_tokens=self.max_new_tokens, eos_token_id=stop, pad_token_id=pad, do_sample=False,
                      temperature=None, top_p=None, top_k=None)
        was_training = model.training
        model.eval()
        try:
            out: list[str] = []
            for start in range(0, len(self.prompts), BATCH):
                with autocast():  # the precision training's forward runs in
                    out += generate_batch(model, self.tokenizer, self.prompts[start:start + BATCH], device, kwargs)
            return out
        finally:
            model.train(was_training)

    def __call__(self, loop: Any) -> None:
        if not self.due(loop):
            return
        acc = loop.accelerator
        answers = self.answers(acc.unwrap_model(loop.model), acc.device, acc.autocast)
        references = [item.reference for item in self.items]
        scores = score_corpus(answers, references, SCORED)
        loop._log({"eval_generation_bleu": scores.summary["bleu"], "eval_generation_rouge_l": scores.summary["rouge_l"],
                   "eval_generation_rows": len(answers)})
        rows = [{"source": item.source, "prompt": _user_turn(item), "reference": item.reference, "answer": answer,
                 **{k: row[k] for k in SCORED}} for item, answer, row in zip(self.items, answers, scores.per_row)]
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps({"step": loop.state.global_step, "rows": rows}, ensure_ascii=False) + "\n")


def _user_turn(item: GenerationItem) -> str:
    return next((m.content for m in reversed(item.prompt) if m.role == "user"), "")


def generation_hook(run: Any) -> GenerationProbe | None:
    """The step hook for ``run`` (a ``training.run.Run`` after its data and model are built), or None when
    ``eval_generation_steps`` is off or cannot run (the run says why and trains on)."""
    cfg = run.cfg
    if not cfg.eval_generation_steps:
        return None
    if run.world > 1:
        run.say(f"eval_generation_steps: not run with {run.world} processes (one process only); training goes on")
        return None
    items = validation_items(cfg, run.data.validation, cfg.eval_generation_rows)
    if not items:
        run.say("eval_generation_steps: the run has no validation rows to answer; training goes on")
        return None
    prompts = [encode_prompt(run.tokenizer, with_system_prompt(item.prompt, cfg.system_prompt),
                             chat_template=cfg.apply_chat_template) for item in items]
    run.say(f"eval_generation_steps: {len(items)} validation prompts answered every {cfg.eval_generation_steps} steps "
            f"(greedy, at most {cfg.max_completion_length} new tokens) -> {METRICS_FILE}, {GENERATIONS_FILE}")
    path = Path(cfg.output_dir) / GENERATIONS_FILE
    plan = getattr(run, "plan", None)
    if plan is not None and plan.checkpoint is not None:  # resumed: the steps after the checkpoint are redone
        trim_metrics(path, plan.saved["train_state"]["global_step"])
    return GenerationProbe(cfg.eval_generation_steps, items, prompts, run.tokenizer, cfg.max_completion_length, path)
