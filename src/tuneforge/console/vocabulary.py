"""The words the console's pages show and decide by, gathered from their Python owners into one JSON block.

Every page renders ``page_vocabulary(service)`` once (base.html: ``<script type="application/json"
id="tf-vocabulary">``); ``common.js`` reads it as ``TF.V`` and the templates read it as ``vocab``. No script or
template spells its own copy: tests/unit/console/test_vocabulary.py scans them. The owners:

- task statuses, what each allows, the states of a task's commands: the task service (``service.vocabulary()``;
  the console knows the service only as the object it is handed);
- methods: their values are the gallery's (``models.catalog.METHODS``), the config keys each one sets are
  checked against ``TrainConfig.method`` by the test, their labels are here;
- strategies and their labels: ``console/fields.py``; the built-in model: ``config.BUILTIN_MODEL``; every config
  key's default: ``config.FIELDS`` (a task's page shows its resolved config, defaults included);
- how a metric's value is written (unit, scale, digits): here, for the pages' scripts and ``metric_text``.
"""
from __future__ import annotations

from typing import Any

from ..config import BUILTIN_MODEL
from ..models.catalog import METHODS as METHOD_VALUES
from . import fields

METHOD_LABELS = {"full": "Full", "lora": "LoRA", "qlora4": "QLoRA 4-bit", "qlora8": "QLoRA 8-bit"}
# The config keys a method sets; the other methods' keys stay at their defaults. LoRA sets none: it is the
# config's default method. A config is of the first method (in this order) whose keys it has, else LoRA.
METHOD_KEYS: dict[str, dict[str, Any]] = {"full": {"lora_dim": 0}, "qlora4": {"load_in_4bit": True},
                                          "qlora8": {"load_in_8bit": True}, "lora": {}}
DEFAULT_METHOD = "lora"
GALLERY_STRATEGIES = ("sft", "dpo")  # the strategies a gallery card has a "Fine-tune" button for
# How a metric's value is written: the first rule whose text is part of the metric's name. Accuracies are
# fractions shown in %; losses, rewards and margins are in nats.
METRIC_FORMATS: tuple[dict[str, Any], ...] = (
    {"contains": "accurac", "unit": "%", "scale": 100, "digits": 1},
    {"contains": "", "unit": "nats", "scale": 1, "digits": 4},
)


def methods() -> list[dict[str, Any]]:
    """The methods in the gallery's order: value, label and the config keys each sets."""
    return [{"value": m, "label": METHOD_LABELS[m], "keys": dict(METHOD_KEYS[m])} for m in METHOD_VALUES]


def method_choices() -> list[tuple[str, str]]:
    """(value, label) of each method, for the form's radio buttons and the gallery's tables."""
    return [(m["value"], m["label"]) for m in methods()]


def metric_format(name: str | None) -> dict[str, Any]:
    return next(f for f in METRIC_FORMATS if f["contains"] in (name or ""))


def metric_unit(name: str | None) -> str:
    return metric_format(name)["unit"]


def metric_text(value: Any, name: str | None) -> str:
    """A metric with its unit and name, as the pages' script writes it: '0.1234 nats (eval_loss)'."""
    if not isinstance(value, (int, float)):
        return "–"
    f = metric_format(name)
    return f"{value * f['scale']:.{f['digits']}f} {f['unit']} ({name or ''})"


def resolved_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """A task's config with every key it leaves unset at its default (what the run uses)."""
    return {**fields.defaults(), **(config or {})}


def console_vocabulary() -> dict[str, Any]:
    """The console's own part of the vocabulary (everything but the service's words)."""
    default = {"value": DEFAULT_METHOD, "label": METHOD_LABELS[DEFAULT_METHOD]}
    return {"methods": methods(), "default_method": default, "strategies": fields.strategies(),
            "gallery_strategies": list(GALLERY_STRATEGIES), "metric_formats": [dict(f) for f in METRIC_FORMATS],
            "builtin_model": BUILTIN_MODEL, "config_defaults": fields.defaults()}


def page_vocabulary(service: Any) -> dict[str, Any]:
    """The whole vocabulary a page receives: the service's words (none when no service runs: an error page) and
    the console's."""
    words = dict(service.vocabulary()) if service is not None else {}
    words.update(console_vocabulary())
    return words
