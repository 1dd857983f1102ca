"""Workflow sub-commands around training: data statistics, a preview of what is trained, merging an
adapter into its base, chatting with and generating from a trained model.

Each module has ``add_parser(subparsers)`` that registers its sub-command(s) and sets
``func(args) -> int``; ``tuneforge.cli.COMMAND_MODULES`` lists the modules.
"""
