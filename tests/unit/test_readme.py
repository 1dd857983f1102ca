"""The README's config table and test command stay in sync with the code and CI."""
import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_config_table_is_current():
    spec = importlib.util.spec_from_file_location("gen", ROOT / "scripts" / "gen_config_table.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert gen.render(readme) == readme, "run: python scripts/gen_config_table.py"


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    command = 'HF_HUB_OFFLINE=1 python -m pytest -m "not slow" -q'
    assert command in ci and command in readme
