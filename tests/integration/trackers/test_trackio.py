"""report_to: trackio — trackio's local store (TRACKIO_DIR) read back with trackio's own SQLiteStorage: every
metrics.jsonl field at its step, the resolved config as the run's config, the summary.

trackio reads TRACKIO_DIR once, when it is imported, so the run and the read-back happen in a child process
with TRACKIO_DIR pointing into the test's directory."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("trackio", reason="the trackio extra (pip install 'tuneforge[trackio]') is not installed")

CHILD = textwrap.dedent("""
    import json, sys
    import tuneforge
    keys = json.loads(sys.argv[1])
    tuneforge.train(keys, progress=False)
    from trackio.sqlite_storage import SQLiteStorage
    saved = json.load(open(keys["output_dir"] + "/trackers.json"))["trackio"]
    print("READBACK " + json.dumps({"saved": saved, "runs": SQLiteStorage.get_runs(saved["project"]),
                                    "logs": SQLiteStorage.get_logs(saved["project"], saved["id"]),
                                    "config": SQLiteStorage.get_run_config(saved["project"], saved["id"])}))
""")


def test_local_store_has_every_record_and_the_config(tmp_path, run_keys, helpers):
    out, store = tmp_path / "run", tmp_path / "trackio-store"
    keys = {**run_keys, "output_dir": str(out), "report_to": ["trackio"], "tracker_project": "toy"}
    env = {**os.environ, "TRACKIO_DIR": str(store), "HF_HUB_OFFLINE": "1"}
    env.pop("TRACKIO_SPACE_ID", None)
    done = subprocess.run([sys.executable, "-c", CHILD, json.dumps(keys)], env=env, capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    back = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("READBACK "))[9:])
    assert back["saved"]["location"] == str(store) and back["runs"] == ["run"]
    assert (store / "toy.db").is_file()

    logged: dict[int, dict] = {}
    for row in back["logs"]:
        logged.setdefault(row["step"], {}).update(row)
    expected: dict[int, dict] = {}
    for record in helpers.read_records(out):
        expected.setdefault(record["step"], {}).update(helpers.numeric_fields(record))
    assert logged.keys() == expected.keys()
    for step, fields in expected.items():
        for key, value in fields.items():
            assert logged[step][key] == pytest.approx(value, rel=1e-9), (step, key)
    last = logged[max(logged)]
    assert last["summary/steps"] == 3 and "summary/train_loss" in last

    for key in ("learning_rate", "lora_dim", "seq_length", "report_to", "max_steps"):
        assert back["config"][key] == {**run_keys, "learning_rate": 1e-4, "report_to": ["trackio"]}[key], key
    assert back["config"]["output_dir"] == str(out.resolve())
