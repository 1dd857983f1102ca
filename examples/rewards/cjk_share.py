"""An example user reward for `reward_functions: [examples/rewards/cjk_share.py:cjk_share]`.

A reward function gets the prompts, the completions and the data rows' other columns (one list per column,
aligned with the completions) and returns one float (or None: cannot score) per completion.
"""


def cjk_share(prompts, completions, **columns):
    """The share of CJK ideographs among a completion's non-space characters (a dense reward: a random
    model's completions already spread around it, so GRPO's groups differ from the first step)."""
    scores = []
    for text in completions:
        chars = [ch for ch in text if not ch.isspace()]
        scores.append(sum("\u4e00" <= ch <= "\u9fff" for ch in chars) / len(chars) if chars else 0.0)
    return scores
