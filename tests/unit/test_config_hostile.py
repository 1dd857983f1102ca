"""Hostile and absurd config values are refused with the key and a short value, before anything loads
(issue 11, case 6): NaN and infinity for every float key, non-integral and out-of-range integers, upper
bounds, and a YAML alias bomb that must not be expanded while the message is built."""
import math
import time
import pytest
import yaml

from tuneforge.config import FIELDS, KEY_TYPES, from_dict, load_config
from tuneforge.errors import ConfigError

HOSTILE = [float("nan"), float("inf"), float("-inf"), 1e308, -1, 0, "a string", "nan", "1e308"]


def _numeric_keys():
    keys = []
    for name in FIELDS:
        if any(a.kind in ("integer", "number") for a in KEY_TYPES[name].arms) and name not in ("train_data",):
            keys.append(name)
    return keys


NUMERIC = _numeric_keys()


def test_every_numeric_key_is_covered():
    for key in ("learning_rate", "weight_decay", "warmup_ratio", "lora_alpha", "seed", "max_steps",
                "per_device_train_batch_size", "num_train_epochs", "seq_length"):
        assert key in NUMERIC


@pytest.mark.parametrize("key", NUMERIC)
def test_each_numeric_key_refuses_or_bounds_hostile_values(key, data):
    for value in HOSTILE:
        try:
            cfg = from_dict({"train_data": data, key: value})
        except ConfigError as err:
            text = str(err)
            assert text.startswith(key) or key in text, text
            assert len(text) < 600, text
            continue
        got = getattr(cfg, key)
        # accepted: then it is a finite number within the key's bound (0 and -1 are legal for some keys)
        assert isinstance(got, (int, float)) and not isinstance(got, bool), (key, value, got)
        assert math.isfinite(got), (key, value, got)
        bound = FIELDS[key].metadata.get("hi") or 2 ** 31 - 1
        assert got <= bound, (key, value, got)
        assert value in (-1, 0), (key, value, got)  # the huge and non-finite ones are never accepted


@pytest.mark.parametrize("key,value", [("weight_decay", float("nan")), ("learning_rate", float("nan")),
                                       ("warmup_ratio", float("nan")), ("lora_alpha", 1e308),
                                       ("lora_alpha", float("inf")), ("seed", 1.0e308),
                                       ("per_device_train_batch_size", 1.0e308), ("max_steps", 1.0e308)])
def test_the_reproduced_cases_are_refused(key, value, data):
    with pytest.raises(ConfigError, match=key):
        from_dict({"train_data": data, key: value})


def test_yaml_file_values_are_checked(tmp_path, data):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"train_data: {data}\nseed: 1.0e+308\n")
    with pytest.raises(ConfigError, match="seed"):
        load_config(cfg)
    cfg.write_text(f"train_data: {data}\nweight_decay: .nan\n")
    with pytest.raises(ConfigError, match="weight_decay=nan: must be a finite number"):
        load_config(cfg)


BOMB = """
a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


@pytest.mark.parametrize("key", ["lora_target_modules", "model", "dpo_loss_type", "seed", "system_prompt",
                                 "per_device_train_batch_size", "learning_rate", "overwrite_output_dir"])
def test_an_alias_bomb_in_a_known_key_is_refused_without_expanding_it(tmp_path, key):
    # 9**9 = 387 million strings once expanded; refused in well under a second with a short message
    cfg = tmp_path / "bomb.yaml"
    cfg.write_text(BOMB.replace("i: &i", f"{key}:"))
    raw = yaml.safe_load(cfg.read_text())
    start = time.perf_counter()
    with pytest.raises(ConfigError) as err:
        from_dict({k: v for k, v in raw.items() if k == key})
    assert time.perf_counter() - start < 1.0
    assert key in str(err.value) and len(str(err.value)) < 400


def test_data_paths_relative_to_the_config_file_are_normalised():
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    cfg = load_config(repo / "examples" / "configs" / "sft_lora.yaml")
    assert ".." not in Path(cfg.train_data).parts and Path(cfg.train_data).is_file()
