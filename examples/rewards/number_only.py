"""Example user reward for the arithmetic prompts ("Answer with the number only."): the share of a completion's
non-space characters that belong to a number (digits, a minus sign, a decimal point).

A reward function is called with the prompts, the completions and the data rows' other columns (one list per
column, aligned with the completions: here ``answer``) and returns one float, or None when it cannot score a
completion, per completion:

    reward_functions: [accuracy, examples/rewards/number_only.py:number_share]
"""


def number_share(prompts, completions, **columns):
    """Dense: a random model's completions already differ in it, so GRPO's groups carry signal from step one."""
    scores = []
    for text in completions:
        chars = [ch for ch in text if not ch.isspace()]
        scores.append(sum(ch.isdigit() or ch in "-." for ch in chars) / len(chars) if chars else 0.0)
    return scores
