"""The grouped config (issue 24): every key in exactly one group, flat for users, saved exactly as before.

tests/fixtures/config_to_dict.json is ``TrainConfig().to_dict()`` from the tree before the grouping: the keys,
their order and defaults of a saved tuneforge_config.yaml must not change with how the keys are declared.
"""
from __future__ import annotations

import ast
import dataclasses
import json
from collections import Counter
from pathlib import Path

import yaml

import tuneforge
from tuneforge.config import FIELDS, GROUPS, SAVED_KEY_ORDER, TrainConfig, group_of, help_lines, load_config

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "config_to_dict.json"
PACKAGE = Path(tuneforge.__file__).resolve().parent


def test_every_key_is_in_exactly_one_group():
    counts = Counter(k for g in GROUPS for k in g.keys)
    assert [k for k, n in counts.items() if n > 1] == []
    assert set(counts) == set(FIELDS)
    assert len({g.name for g in GROUPS}) == len(GROUPS)
    assert group_of("learning_rate").name == "optimisation" and group_of("grpo_beta").name == "grpo"


def test_keys_are_listed_group_by_group():
    # TrainConfig's bases must stay GROUPS reversed: the CLI help, the README table and the form follow FIELDS
    assert list(FIELDS) == [k for g in GROUPS for k in g.keys]
    assert [row[0] for row in help_lines()] == list(FIELDS)


def test_to_dict_keys_order_and_defaults_are_those_before_the_grouping():
    before = json.loads(FIXTURE.read_text(encoding="utf-8"))["items"]
    now = list(TrainConfig().to_dict().items())
    assert [k for k, _ in now[:len(before)]] == [k for k, _ in before]
    assert [list(item) for item in now[:len(before)]] == before
    # a key added after the grouping is saved after the old ones
    assert list(SAVED_KEY_ORDER) == [k for k, _ in before]


def test_saved_yaml_is_flat_and_reads_back(tmp_path, data):
    cfg = load_config(None, [f"train_data={data}", "learning_rate=3e-4", "lora_dim=8", "grpo_beta=0.01"])
    text = yaml.safe_dump(cfg.to_dict(), allow_unicode=True, sort_keys=False)
    saved = yaml.safe_load(text)
    assert all(not isinstance(v, dict) for v in saved.values())  # no nested groups
    assert list(saved) == list(SAVED_KEY_ORDER)
    assert load_config(None, **saved) == cfg
    assert cfg.learning_rate == 3e-4 and cfg.method == "lora" and cfg.resolved_lora_alpha == 16.0
    assert dataclasses.replace(cfg, lora_dim=0).method == "full"


def test_config_source_lines_fit_120_columns():
    long = [f"{p.relative_to(PACKAGE)}:{i}" for p in sorted((PACKAGE / "config").glob("*.py"))
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if len(line) > 120]
    assert long == []


def test_only_the_config_walks_type_annotations():
    """One annotation walker (config/values.py): no other module reads typing's structure of the config."""
    readers = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.parent.name == "config" and path.parent.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        names = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)} | \
            {a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        if names & {"get_type_hints", "get_origin", "get_args"}:
            readers.append(str(path.relative_to(PACKAGE)))
    assert readers == []
