"""`model: <gallery id>` resolves to the entry's hub id where a model loads; a local directory still wins."""
from __future__ import annotations

from tuneforge.models.load import resolve_model_name


def test_gallery_id_resolves_to_its_hub_id():
    assert resolve_model_name("qwen2.5-7b-instruct") == "Qwen/Qwen2.5-7B-Instruct"
    assert resolve_model_name("Llama-3.1-8B-Instruct".lower()) == "meta-llama/Llama-3.1-8B-Instruct"
    assert resolve_model_name("builtin:toy") == "builtin:toy"
    assert resolve_model_name("someone/other-model") == "someone/other-model"  # not in the gallery: as given


def test_local_directory_wins(tmp_path, monkeypatch):
    (tmp_path / "qwen2.5-7b-instruct").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model_name("qwen2.5-7b-instruct") == "qwen2.5-7b-instruct"

