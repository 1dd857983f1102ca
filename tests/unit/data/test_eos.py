"""An answer that already ends with the EOS text gets one trained EOS, not two (issue 14, item 7)."""
from __future__ import annotations

import pytest

from tuneforge.data.formats import Message
from tuneforge.data.templates import IGNORE_INDEX, encode_messages


@pytest.mark.parametrize("chat_template", [True, False])
def test_answer_ending_with_eos_text_is_trained_with_one_eos(toy_tokenizer, chat_template):
    tok = toy_tokenizer
    plain = encode_messages(tok, [Message("user", "q"), Message("assistant", "Yes.")], chat_template=chat_template)
    for ending in (tok.eos_token, tok.eos_token + "\n", tok.eos_token + tok.eos_token):
        enc = encode_messages(tok, [Message("user", "q"), Message("assistant", "Yes." + ending)],
                              chat_template=chat_template)
        trained = [t for t in enc.labels if t != IGNORE_INDEX]
        assert trained.count(tok.eos_token_id) == 1, ending
        assert enc.input_ids == plain.input_ids
