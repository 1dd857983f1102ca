"""Stop strings, held-back text and token choice, with a character-level stand-in tokenizer."""
from __future__ import annotations

import torch

from tuneforge.serving.sampling import SamplingParams, TextTracker, make_generator, next_token


class CharTokenizer:
    """Token i is the i-th string of ``pieces``; decoding joins them (like a byte-level BPE would)."""

    def __init__(self, pieces: list[str]):
        self.pieces = pieces

    def decode(self, ids, skip_special_tokens=True):
        return "".join(self.pieces[i] for i in ids)


def feed(tracker: TextTracker, ids: list[int]) -> list[str]:
    return [tracker.add(i) for i in ids]


def test_text_flows_out_as_it_comes_without_stop_strings():
    tracker = TextTracker(CharTokenizer(["Hel", "lo", " world"]))
    assert feed(tracker, [0, 1, 2]) == ["Hel", "lo", " world"]
    assert not tracker.stopped and tracker.flush() == ""


def test_a_stop_string_split_over_tokens_is_held_back_then_cut():
    tracker = TextTracker(CharTokenizer(["one ", "EN", "D two"]), stop=("END",))
    out = feed(tracker, [0, 1])
    assert out == ["one ", ""]  # "EN" could begin "END": held back
    assert tracker.add(2) == "" and tracker.stopped
    assert tracker.text == "one "


def test_held_back_text_is_released_when_it_does_not_become_a_stop():
    tracker = TextTracker(CharTokenizer(["a", "E", "x"]), stop=("END",))
    assert feed(tracker, [0, 1, 2]) == ["a", "", "Ex"]
    assert not tracker.stopped


def test_earliest_of_several_stop_strings_wins():
    tracker = TextTracker(CharTokenizer(["x; y. z"]), stop=(".", ";"))
    tracker.add(0)
    assert tracker.stopped and tracker.text == "x"


def test_an_incomplete_character_waits_for_its_next_token():
    tracker = TextTracker(CharTokenizer(["ok", "\ufffd", ""]))
    assert tracker.add(0) == "ok"
    assert tracker.add(1) == ""  # half of a multi-byte character so far
    assert tracker.flush() == "\ufffd"  # at the end, whatever is there is sent


def test_greedy_is_argmax_and_sampling_repeats_with_a_seed():
    logits = torch.tensor([0.1, 3.0, 0.2, 2.9])
    assert next_token(logits, SamplingParams(max_tokens=1, temperature=0.0), None) == 1
    params = SamplingParams(max_tokens=1, temperature=1.0, seed=7)
    draws = [[next_token(logits, params, gen) for _ in range(20)] for gen in (make_generator(params, 0),
                                                                               make_generator(params, 0))]
    assert draws[0] == draws[1]
    choice_1 = make_generator(params, 1)  # another choice of the same request draws its own sequence
    assert [next_token(logits, params, choice_1) for _ in range(20)] != draws[0]


def test_top_p_keeps_only_the_nucleus():
    logits = torch.log(torch.tensor([0.6, 0.3, 0.05, 0.05]))
    params = SamplingParams(max_tokens=1, temperature=1.0, top_p=0.8, seed=1)
    gen = make_generator(params, 0)
    seen = {next_token(logits, params, gen) for _ in range(300)}
    assert seen == {0, 1}
