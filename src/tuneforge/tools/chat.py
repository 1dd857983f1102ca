"""``tuneforge chat``: talk to a trained model in the terminal, streaming its answer, keeping the history.

The prompt is rendered with the run's chat template and system prompt (from the run's
``tuneforge_config.yaml``), so the model is asked the way it was trained.
"""
from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Callable, TextIO

import torch

from ..data.formats import Message
from ..models import inference
from .common import add_generation_arguments, add_model_arguments, generation_kwargs, load_for_inference

HELP = ("commands: /reset clears the history, /history shows it, /exit (or Ctrl-D) quits; "
        "Ctrl-C stops an answer and keeps the chat")


def _streamer(tokenizer, out: TextIO):
    """transformers' TextStreamer, writing to ``out`` instead of print()."""
    from transformers import TextStreamer

    class Streamer(TextStreamer):
        def on_finalized_text(self, text: str, stream_end: bool = False) -> None:
            out.write(text + ("\n" if stream_end else ""))
            out.flush()

    return Streamer(tokenizer, skip_prompt=True, skip_special_tokens=True)


@dataclass
class ChatSession:
    """One conversation: the history, and a reply function that streams to ``out``."""

    model: torch.nn.Module
    tokenizer: object
    source: inference.ModelSource
    gen_kwargs: dict
    device: torch.device
    system_prompt: str | None = None
    out: TextIO = field(default_factory=lambda: sys.stdout)
    history: list[Message] = field(default_factory=list)

    def reply(self, text: str) -> str:
        """Stream the answer to ``text``; an interrupted answer (Ctrl-C) leaves the history as it was."""
        ids = inference.prompt_ids(self.tokenizer, self.source, self.history + [Message("user", text)],
                                   self.system_prompt)
        input_ids = torch.tensor([ids], device=self.device)
        streamer = _streamer(self.tokenizer, self.out)
        with torch.no_grad():
            output = self.model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                                         streamer=streamer, **self.gen_kwargs)
        answer = self.tokenizer.decode(output[0, len(ids):], skip_special_tokens=True).strip()
        self.history += [Message("user", text), Message("assistant", answer)]
        return answer

    def shown_history(self) -> str:
        system = self.system_prompt if self.system_prompt is not None else self.source.system_prompt
        lines = [f"system: {system}"] if system is not None else ["system: (the chat template's default)"]
        lines += [f"{m.role}: {m.content}" for m in self.history]
        return "\n".join(lines)


def _commands(session: ChatSession) -> dict[str, Callable[[], bool]]:
    """Slash commands; each returns False to end the chat."""
    def reset() -> bool:
        session.history.clear()
        session.out.write("(history cleared)\n")
        return True

    def show() -> bool:
        session.out.write(session.shown_history() + "\n")
        return True

    return {"/exit": lambda: False, "/quit": lambda: False, "/reset": reset, "/history": show,
            "/help": lambda: bool(session.out.write(HELP + "\n")) or True}


def describe(source: inference.ModelSource, device: torch.device, dtype: torch.dtype) -> str:
    """The banner: which model and adapter answer."""
    adapter = f" + adapter {source.adapter}" if source.adapter else ""
    return f"chat with {source.base}{adapter} ({str(dtype).replace('torch.', '')} on {device})"


def _read_line(session: ChatSession, lines: TextIO, interactive: bool) -> str | None:
    """The next input line; None at end of input (Ctrl-D). Ctrl-C at the prompt gives a fresh prompt."""
    while True:
        if interactive:
            session.out.write(">>> ")
            session.out.flush()
        try:
            line = lines.readline()
        except KeyboardInterrupt:
            session.out.write("\n(Ctrl-D or /exit quits)\n")
            continue
        if not line and interactive:
            session.out.write("\n")  # the shell prompt starts on its own line after Ctrl-D
        return line or None


def run_chat(session: ChatSession, lines: TextIO, interactive: bool, banner: str | None = None) -> int:
    commands = _commands(session)
    if interactive:
        session.out.write((banner + "\n" if banner else "") + HELP + "\n")
    while True:
        line = _read_line(session, lines, interactive)
        if line is None:  # end of input
            break
        text = line.rstrip("\n")
        if not text.strip():
            continue
        command = commands.get(text.strip().lower())
        if command is not None:
            if not command():
                break
            continue
        if text.strip().startswith("/"):
            session.out.write(f"unknown command {text.strip()!r}; {HELP}\n")
            continue
        session.out.write("assistant: ")
        session.out.flush()
        try:
            session.reply(text)
        except KeyboardInterrupt:  # stop this answer, keep the conversation before it
            session.out.write("\n(answer stopped; it is not kept in the history)\n")
    return 0


def _cmd(args: argparse.Namespace) -> int:
    source, model, tokenizer, device = load_for_inference(args)
    kwargs = generation_kwargs(args, inference.stop_token_ids(model, tokenizer), tokenizer.pad_token_id)
    session = ChatSession(model, tokenizer, source, kwargs, device, system_prompt=args.system, out=sys.stdout)
    dtype = next(model.parameters()).dtype
    return run_chat(session, sys.stdin, interactive=sys.stdin.isatty(), banner=describe(source, device, dtype))


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "chat", help="chat with a trained model in the terminal (streaming, keeps the history)",
        description="Interactive chat with a run directory (LoRA or full), a merged directory, or a base model "
                    "plus --adapter. Uses the run's chat template and system prompt. " + HELP + ".")
    add_model_arguments(p)
    add_generation_arguments(p, max_new_tokens=512)
    p.set_defaults(func=_cmd)
