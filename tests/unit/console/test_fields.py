"""The new-task form is built from the config's own fields: every key is offered once, with the right input."""
from __future__ import annotations

from tuneforge.config import FIELDS, PER_RUN_KEYS
from tuneforge.console import fields


def test_every_config_key_is_in_the_form_once():
    offered = [f["key"] for f in fields.guide_fields() + fields.advanced_fields()]
    assert len(offered) == len(set(offered))
    expected = set(FIELDS) - set(fields.TOP_KEYS) - set(PER_RUN_KEYS)
    assert set(offered) == expected


def test_guide_keys_come_first_with_advice():
    guide = fields.guide_fields()
    assert [f["key"] for f in guide] == list(fields.GUIDE_ADVICE)
    assert {"learning_rate", "num_train_epochs", "per_device_train_batch_size", "seq_length", "lora_dim",
            "lora_alpha", "dpo_beta", "load_in_4bit", "load_in_8bit", "gradient_accumulation_steps",
            "apply_chat_template", "system_prompt"} == set(fields.GUIDE_ADVICE)
    assert all(f["advice"] for f in guide)


def test_input_kinds_follow_the_annotations():
    kinds = {f["key"]: f for f in fields.guide_fields() + fields.advanced_fields()}
    assert kinds["load_in_4bit"]["kind"] == "bool"
    assert kinds["seq_length"]["kind"] == "integer" and kinds["seq_length"]["unit"] == "tokens"
    assert kinds["learning_rate"]["kind"] == "number"
    assert kinds["lr_scheduler_type"]["kind"] == "choice" and "cosine" in kinds["lr_scheduler_type"]["choices"]
    assert kinds["gradient_checkpointing"]["choices"] == ["false", "true", "auto"]
    assert kinds["per_device_train_batch_size"]["kind"] == "text"  # an integer or 'auto'
    assert kinds["lora_alpha"]["nullable"] and kinds["lora_target_modules"]["kind"] == "list"


def test_advanced_keys_stand_under_their_config_group():
    from tuneforge.config import GROUPS, group_of

    groups = fields.advanced_groups()
    assert [g["name"] for g in groups] == [g.name for g in GROUPS if g.name in {x["name"] for x in groups}]
    for group in groups:
        assert group["title"] and all(group_of(f["key"]).name == group["name"] for f in group["fields"])
    assert fields.form_keys() == {"top": list(fields.TOP_KEYS), "guide": list(fields.GUIDE_ADVICE)}
