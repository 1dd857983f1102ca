"""The pages' words have one owner each: the JSON block every page receives (console/vocabulary.py) matches the
Python owners, and no script or template spells its own copy of a status, a method, a metric unit or the
built-in model's name."""
from __future__ import annotations

import itertools
import json
import re
import shutil
import subprocess
import types
import typing
from pathlib import Path

import pytest

import tuneforge.service as service_pkg
from tuneforge.config import BUILTIN_MODEL, TrainConfig
from tuneforge.console import fields, vocabulary
from tuneforge.models.catalog import METHODS

CONSOLE = Path(vocabulary.__file__).parent
JS_DIR = CONSOLE / "static" / "js"
TEMPLATE_DIR = CONSOLE / "templates"
# TrainConfig.method spells the quantized methods out; the pages use the gallery's short names.
CONFIG_METHOD = {"full": "full", "lora": "lora", "qlora4": "qlora-4bit", "qlora8": "qlora-8bit"}


def owned_words() -> dict[str, str]:
    """Each word a page must take from the vocabulary, with its owner (for the failure message)."""
    words = {s: "tuneforge.service.STATUSES" for s in service_pkg.STATUSES}
    words.update({m["value"]: "console/vocabulary.py methods (values: models.catalog.METHODS)"
                  for m in vocabulary.methods()})
    words.update({m["label"]: "console/vocabulary.py METHOD_LABELS" for m in vocabulary.methods()})
    words.update({f["unit"]: "console/vocabulary.py METRIC_FORMATS" for f in vocabulary.METRIC_FORMATS
                  if f["unit"].isalpha()})  # '%' is everywhere in CSS and prose: its rule is caught by 'accurac'
    words[BUILTIN_MODEL] = "config.BUILTIN_MODEL"
    return words


# -- the scanner -------------------------------------------------------------------------------------------------

_REGEX_BEFORE = set("(,=:[!&|?{};+-*%<>~^") | {""}


def js_literals(text: str) -> list[tuple[int, str]]:
    """(line, content) of every string and template literal of a script, comments and regex literals skipped."""
    out, i, n, line, prev = [], 0, len(text), 1, ""
    while i < n:
        ch = text[i]
        if text.startswith("//", i):
            i = text.find("\n", i) if "\n" in text[i:] else n
            continue
        if text.startswith("/*", i):
            end = text.find("*/", i + 2)
            line += text.count("\n", i, end)
            i = end + 2
            continue
        if ch in "\"'`":
            j, buf = i + 1, []
            while j < n and text[j] != ch:
                if text[j] == "\\":
                    buf.append(text[j:j + 2])
                    j += 2
                    continue
                buf.append(text[j])
                j += 1
            out.append((line, "".join(buf)))
            line += text.count("\n", i, j)
            i, prev = j + 1, ch
            continue
        if ch == "/" and prev in _REGEX_BEFORE:  # a regex literal: its quotes are not strings
            j = i + 1
            while j < n and text[j] != "/":
                j += 2 if text[j] == "\\" else 1
            i, prev = j + 1, "/"
            continue
        if ch == "\n":
            line += 1
        if not ch.isspace():
            prev = ch
        i += 1
    return out


def js_code(text: str) -> str:
    """The script without its comments (for rules written as regexes, e.g. /accurac/)."""
    text = re.sub(r"/\*.*?\*/", lambda m: "\n" * m.group().count("\n"), text, flags=re.S)
    return re.sub(r"(^|[^:\\])//[^\n]*", r"\1", text)


def _flag(literal: str, words: dict[str, str]) -> str | None:
    """The owned word a literal spells: the whole literal, a query value ('method=lora'), or a unit or the
    built-in model's name anywhere in it."""
    for word in words:
        if literal.strip() == word or re.search(rf"=\s*{re.escape(word)}(&|$)", literal):
            return word
        if (word == BUILTIN_MODEL or word.isalpha() and word.islower() and word in _UNIT_WORDS) and \
                re.search(rf"(?<![\w:]){re.escape(word)}(?![\w:])", literal):
            return word
    return None


_UNIT_WORDS = {f["unit"] for f in vocabulary.METRIC_FORMATS}


def copies_in_js(path: Path, words: dict[str, str]) -> list[str]:
    text = path.read_text(encoding="utf-8")
    found = [f"{path.name}:{line}: {lit!r} spells {_flag(lit, words)!r} ({words[_flag(lit, words)]})"
             for line, lit in js_literals(text) if _flag(lit, words)]
    for m in re.finditer(r"accurac", js_code(text)):
        found.append(f"{path.name}:{text.count(chr(10), 0, m.start()) + 1}: decides a metric's format by its name "
                     "(console/vocabulary.py METRIC_FORMATS; use TF.metricFormat)")
    return found


_JINJA = re.compile(r"{{.*?}}|{%.*?%}|{#.*?#}", re.S)


def copies_in_template(path: Path, words: dict[str, str]) -> list[str]:
    """Literals inside Jinja tags, and the page text and attribute values around them."""
    text = path.read_text(encoding="utf-8")
    found = []
    for tag in _JINJA.finditer(text):
        line = text.count("\n", 0, tag.start()) + 1
        for lit in re.findall(r"\"([^\"]*)\"|'([^']*)'", tag.group()):
            lit = lit[0] or lit[1]
            if _flag(lit, words) or "accurac" in lit:
                found.append(f"{path.name}:{line}: {lit!r} inside {tag.group()[:60]!r}")
    plain = _JINJA.sub(lambda m: " " * len(m.group()), text)
    for m in re.finditer(r"(?<=>)([^<>]+)(?=<)|=\"([^\"]*)\"", plain):
        piece = m.group(1) if m.group(1) is not None else m.group(2)
        word = _flag(piece, words) or next((u for u in _UNIT_WORDS if u.isalpha()
                                            and re.search(rf"\({u}\)", piece)), None)
        if word:
            found.append(f"{path.name}:{plain.count(chr(10), 0, m.start()) + 1}: {piece.strip()[:60]!r} spells "
                         f"{word!r} ({words.get(word, 'a metric unit')})")
    return found


def all_copies(js_dir: Path = JS_DIR, template_dir: Path = TEMPLATE_DIR) -> list[str]:
    words = owned_words()
    return ([c for p in sorted(js_dir.glob("*.js")) for c in copies_in_js(p, words)]
            + [c for p in sorted(template_dir.glob("*.html")) for c in copies_in_template(p, words)])


def test_no_script_or_template_spells_a_vocabulary_word():
    copies = all_copies()
    assert not copies, ("the pages take these words from the vocabulary block (TF.V in scripts, vocab in "
                        "templates; docs/architecture.md, 'Where a page gets its words'):\n" + "\n".join(copies))


@pytest.mark.parametrize("planted, where", [
    ('  if (t.status === "interrupted") go();\n', "js"),
    ("  const label = 'QLoRA 4-bit';\n", "js"),
    ('  const f = function (v) { return v.toFixed(4) + " nats"; };\n', "js"),
    ("  if (/accurac/.test(name)) pct();\n", "js"),
    ('{% for s in ["queued", "running"] %}{{ s }}{% endfor %}\n', "html"),
    ('<option value="succeeded">done</option>\n', "html"),
    ('<h3>Eval loss (nats)</h3>\n', "html"),
    ('<a href="/tasks/new?method=lora&amp;x=1">go</a>\n', "html"),
    ('<input value="builtin:toy">\n', "html"),
])
def test_the_scanner_finds_a_planted_copy(tmp_path, planted, where):
    """The scan above cannot pass by seeing nothing: each kind of copy, planted in a copy of the pages, is found."""
    js, html = tmp_path / "js", tmp_path / "templates"
    shutil.copytree(JS_DIR, js)
    shutil.copytree(TEMPLATE_DIR, html)
    target = js / "common.js" if where == "js" else html / "tasks.html"
    target.write_text(target.read_text(encoding="utf-8") + planted, encoding="utf-8")
    assert all_copies(js, html), planted


def test_js_literals_skip_comments_and_regexes():
    text = '// "queued"\n/* "failed" */ x = /["\']/g; y = "a//b"; z = \'running\';\n'
    assert js_literals(text) == [(2, "a//b"), (2, "running")]


# -- the block matches its owners ---------------------------------------------------------------------------


def test_the_block_carries_the_owners_words():
    words = vocabulary.page_vocabulary(types.SimpleNamespace(vocabulary=service_pkg.vocabulary))
    statuses = words["task_statuses"]
    assert statuses["all"] == list(service_pkg.STATUSES)
    assert statuses["final"] == list(service_pkg.FINAL_STATUSES)
    assert statuses["resumable"] == list(service_pkg.RESUMABLE)
    assert set(statuses["active"]) == set(service_pkg.STATUSES) - set(service_pkg.FINAL_STATUSES)
    assert {statuses["running"], statuses["succeeded"]} <= set(service_pkg.STATUSES)
    assert words["command_states"]["all"] == list(service_pkg.COMMAND_STATES)
    assert [m["value"] for m in words["methods"]] == list(METHODS)
    assert words["default_method"]["value"] in METHODS
    hinted = typing.get_args(typing.get_type_hints(TrainConfig)["training_strategy"])
    assert [s["value"] for s in words["strategies"]] == list(hinted)
    assert set(words["gallery_strategies"]) <= set(hinted)
    assert words["builtin_model"] == BUILTIN_MODEL
    assert words["config_defaults"] == fields.defaults()
    json.dumps(words)  # it travels as JSON


def test_a_page_renders_the_block(tmp_path):
    from fastapi.testclient import TestClient

    from tuneforge.apps import create_app
    from tuneforge.service.settings import Settings

    with TestClient(create_app(Settings(home=tmp_path), start_worker=False), base_url="http://127.0.0.1") as c:
        html = c.get("/tasks").text
        service = c.app.state.service
    block = re.search(r'<script type="application/json" id="tf-vocabulary">(.*?)</script>', html, re.S)
    assert block, "base.html renders the vocabulary block"
    expected = json.loads(json.dumps(vocabulary.page_vocabulary(service), default=str))
    assert json.loads(block.group(1)) == expected
    assert html.index('id="tf-vocabulary"') < html.index("js/common.js")  # common.js reads it as it loads


def _config_method(lora_dim: int, four: bool, eight: bool) -> str:
    cfg = types.SimpleNamespace(lora_dim=lora_dim, load_in_4bit=four, load_in_8bit=eight)
    cfg.is_full = TrainConfig.is_full.fget(cfg)
    return TrainConfig.method.fget(cfg)


COMBOS = list(itertools.product((0, 16), (False, True), (False, True)))


def _method_by_the_table(config: dict) -> str:
    """common.js's TF.methodOf rule over the block's method table: the first method (in the gallery's order)
    whose keys the config has, else the one that sets none."""
    resolved = {**fields.defaults(), **config}
    for m in vocabulary.methods():
        if m["keys"] and all(resolved[k] == v and type(resolved[k]) is type(v) for k, v in m["keys"].items()):
            return m["value"]
    return next(m["value"] for m in vocabulary.methods() if not m["keys"])


@pytest.mark.parametrize("lora_dim, four, eight", COMBOS)
def test_method_keys_name_the_configs_method(lora_dim, four, eight):
    config = {"lora_dim": lora_dim, "load_in_4bit": four, "load_in_8bit": eight}
    assert CONFIG_METHOD[_method_by_the_table(config)] == _config_method(lora_dim, four, eight)


def test_the_scripts_method_rule_is_the_configs():
    """common.js's TF.methodOf over the block gives the config's own method for every combination (needs node)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    words = vocabulary.console_vocabulary()
    script = ("global.window = global; global.document = {getElementById: function () { return {textContent: "
              + json.dumps(json.dumps(words)) + "}; }};\n" + (JS_DIR / "common.js").read_text(encoding="utf-8")
              + "\nconsole.log(JSON.stringify(" + json.dumps(COMBOS) + ".map(function (c) { return TF.methodOf("
              "{lora_dim: c[0], load_in_4bit: c[1], load_in_8bit: c[2]}).value; })));\n")
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=60, check=True).stdout
    got = json.loads(out)
    assert [CONFIG_METHOD[m] for m in got] == [_config_method(*c) for c in COMBOS]


@pytest.mark.parametrize("value, name, text", [
    (0.12345, "eval_loss", "0.1235 nats (eval_loss)"),
    (0.875, "eval_rewards/accuracies", "87.5 % (eval_rewards/accuracies)"),
    (None, "eval_loss", "–"),
])
def test_metric_text(value, name, text):
    assert vocabulary.metric_text(value, name) == text


def test_the_built_in_model_has_one_entry_and_it_is_the_toys():
    """The gallery's data file owns the built-in model's entry (the service lists it, the pages read the service);
    its numbers are the toy's own (models/builtin.py)."""
    from tuneforge.models import catalog
    from tuneforge.models.builtin import toy_config, toy_tokenizer

    ids = [e.id for e in catalog.entries()]
    assert ids[0] == BUILTIN_MODEL and ids.count(BUILTIN_MODEL) == 1
    entry = catalog.get(BUILTIN_MODEL)
    toy = toy_config(len(toy_tokenizer()))
    assert (entry.vocab, entry.layers, entry.hidden, entry.intermediate, entry.heads, entry.kv_heads,
            entry.context_length, entry.tied_embeddings) == (
        toy.vocab_size, toy.num_hidden_layers, toy.hidden_size, toy.intermediate_size, toy.num_attention_heads,
        toy.num_key_value_heads, toy.max_position_embeddings, toy.tie_word_embeddings)
