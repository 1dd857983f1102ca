"""Workflow sub-commands around training: data statistics, a preview of what is trained, merging an
adapter into its base, chatting with and generating from a trained model.

Each module has ``add_parser(subparsers)`` that registers its sub-command(s) and sets
``func(args) -> int``; ``tuneforge.cli.COMMAND_MODULES`` lists the modules. They are command adapters
(arguments in, text out): what they compute lives in the library (``data/preview.py``, ``data/stats.py``,
``models/generation.py``, ``models/merge.py``, ``training/grpo_preview.py``), where the service, serving and
evaluation call it too. ``common.py`` holds the argument helpers the commands share (``evaluation/cli.py``
uses its ``add_trust_argument``); nothing outside a command imports this package.
"""
