"""Request bodies: ranges, stop strings, options refused by name, prompt shapes."""
from __future__ import annotations

import pytest
from pydantic import ValidationError

from tuneforge.serving.protocol import ChatCompletionRequest, CompletionRequest, UnsupportedOption

HI = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("extra", [{"temperature": -0.1}, {"top_p": 0}, {"n": 0}, {"max_tokens": 0},
                                   {"stop": ["a", "b", "c", "d", "e"]}, {"stop": [""]}, {"messages": []},
                                   {"seed": -1}])
def test_out_of_range_values_are_refused(extra):
    with pytest.raises(ValidationError):
        ChatCompletionRequest(**{"model": "m", "messages": HI, **extra})


@pytest.mark.parametrize("name, value", [("logprobs", True), ("tools", [{"type": "function"}]),
                                         ("presence_penalty", 0.5), ("response_format", {"type": "json_object"})])
def test_unimplemented_options_are_named(name, value):
    body = ChatCompletionRequest(model="m", messages=HI, **{name: value})
    with pytest.raises(UnsupportedOption) as err:
        body.check_supported()
    assert err.value.param == name


def test_defaults_and_switched_off_options_pass():
    body = ChatCompletionRequest(model="m", messages=HI, logprobs=False, presence_penalty=0, user="me")
    body.check_supported()
    params = body.sampling(max_tokens=7)
    assert (params.temperature, params.top_p, params.n, params.stop, params.max_tokens) == (1.0, 1.0, 1, (), 7)
    assert ChatCompletionRequest(model="m", messages=HI, max_tokens=3, max_completion_tokens=5).requested_max_tokens() == 5


def test_text_parts_are_joined():
    body = ChatCompletionRequest(model="m", messages=[{"role": "user", "content": [{"type": "text", "text": "a"},
                                                                                   {"type": "text", "text": "b"}]}])
    assert body.messages[0].text() == "ab"


@pytest.mark.parametrize("prompt, expected", [("x", ["x"]), (["x", "y"], ["x", "y"]), ([1, 2], [[1, 2]]),
                                              ([[1], [2, 3]], [[1], [2, 3]])])
def test_completion_prompt_shapes(prompt, expected):
    assert CompletionRequest(model="m", prompt=prompt).prompts() == expected
