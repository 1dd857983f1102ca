"""Sweeps without training: expansion (grid, random draws, ranges, seeds, errors), the API's validation of every
trial before anything is queued, the stored sweep and its view, the per-sweep limit of the queue, migration 5."""
from __future__ import annotations

import json
import math
import sqlite3

import pytest
from fastapi.testclient import TestClient

from tuneforge.service import sweeps
from tuneforge.apps import create_app
from tuneforge.service.errors import BadRequest
from tuneforge.service.settings import Settings
from tuneforge.service.store import MIGRATIONS, SCHEMA_VERSION, Store

ROW = {"instruction": "What is 2 plus 2?", "output": "It is 4."}


def space(**entries):
    return sweeps.parse_space(entries)


def test_grid_is_the_product_of_the_lists_in_order():
    trials = sweeps.expand(space(learning_rate="1e-4,1e-3,1e-2", lora_dim=[8, 16]))
    assert len(trials) == 6
    assert [t["lora_dim"] for t in trials] == [8, 16, 8, 16, 8, 16]
    assert [float(t["learning_rate"]) for t in trials[::2]] == [1e-4, 1e-3, 1e-2]


def test_values_with_commas_inside_brackets_stay_one_value():
    dim = sweeps.parse_dimension("lora_target_modules", "[q_proj,v_proj],[q_proj,k_proj,v_proj]")
    assert dim.values == (["q_proj", "v_proj"], ["q_proj", "k_proj", "v_proj"])


def test_random_draws_are_seeded_distinct_and_within_their_ranges():
    dims = space(learning_rate="log(1e-5,1e-3)", lora_dim="range(4,64)", lora_dropout=[0.0, 0.1])
    a = sweeps.expand(dims, n_random=20, seed=7)
    assert a == sweeps.expand(dims, n_random=20, seed=7)  # same seed, same trials
    assert a != sweeps.expand(dims, n_random=20, seed=8)
    assert len(a) == 20 and len({json.dumps(t, sort_keys=True) for t in a}) == 20
    for t in a:
        assert 1e-5 <= t["learning_rate"] <= 1e-3
        assert isinstance(t["lora_dim"], int) and 4 <= t["lora_dim"] <= 64
        assert t["lora_dropout"] in (0.0, 0.1)


def test_log_range_is_uniform_in_the_exponent():
    draws = sweeps.expand(space(learning_rate="log(1e-6,1e-2)"), n_random=200, seed=0)
    exponents = [math.log10(t["learning_rate"]) for t in draws]
    below = sum(e < -4 for e in exponents)  # half the log range lies below 1e-4; a linear draw would put ~1 % there
    assert 70 <= below <= 130
    floats = sweeps.expand(space(warmup_ratio="range(0.0,0.5)"), n_random=50, seed=1)
    assert all(isinstance(t["warmup_ratio"], float) and 0 <= t["warmup_ratio"] <= 0.5 for t in floats)


@pytest.mark.parametrize("entries, n, words", [
    ({"learning_rate": "log(1e-5,1e-3)"}, None, ["learning_rate=log(1e-5,1e-3)", "--random"]),
    ({"learning_rate": "log(0,1e-3)"}, 3, ["learning_rate=log(0,1e-3)", "above 0"]),
    ({"learning_rate": "range(1e-3,1e-5)"}, 3, ["learning_rate=range(1e-3,1e-5)", "below"]),
    ({"learning_rate": "log(1e-5,abc)"}, 3, ["learning_rate=log(1e-5,abc)", "'abc' is not a number"]),
    ({"learning_rate": "log(1e-5)"}, 3, ["learning_rate=log(1e-5)", "two numbers"]),
    ({"lerning_rate": [1, 2]}, None, ["lerning_rate", "not a config key"]),
    ({"output_dir": ["a", "b"]}, None, ["output_dir", "cannot be swept"]),
    ({"lora_dim": "8,,16"}, None, ["lora_dim", "empty value"]),
    ({"lora_dim": [8, 16]}, 5, ["random=5", "only 2 distinct"]),
    ({"lora_dim": [8, 16]}, 0, ["random=0"]),
])
def test_bad_spaces_name_the_key_and_value(entries, n, words):
    with pytest.raises(BadRequest) as info:
        sweeps.expand(sweeps.parse_space(entries), n_random=n)
    for word in words:
        assert word in str(info.value), str(info.value)


def test_a_grid_larger_than_the_limit_is_refused():
    with pytest.raises(BadRequest, match="at most 256"):
        sweeps.expand(space(lora_dim=list(range(1, 20)), seed=list(range(20))))


# -- through the API (no worker) ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "train.jsonl"
    path.write_text(json.dumps(ROW) + "\n")
    return str(path)


@pytest.fixture
def client(tmp_path):
    app = create_app(Settings(home=tmp_path / "home"), start_worker=False)
    with TestClient(app, base_url="http://127.0.0.1") as c:
        c.service = app.state.service
        yield c


def body(data, **extra):
    return {"config": {"model": "builtin:toy", "train_data": data, "max_steps": 4}, **extra}


def test_a_sweep_queues_one_ordinary_task_per_trial(client, data):
    r = client.post("/api/sweeps", json=body(data, space={"learning_rate": "1e-4,1e-3", "lora_dim": [4, 8]},
                                             name="lr x dim", early_stop="median", grace_steps=2, max_concurrent=2))
    assert r.status_code == 201, r.text
    sweep = r.json()
    assert sweep["name"] == "lr x dim" and sweep["trial_count"] == 4 and sweep["status"] == "queued"
    assert sweep["early_stop"] == "median" and sweep["metric"] == "eval_loss" and sweep["mode"] == "min"
    params = [t["params"] for t in sweep["trials"]]
    assert params == [{"learning_rate": 1e-4, "lora_dim": 4}, {"learning_rate": 1e-4, "lora_dim": 8},
                      {"learning_rate": 1e-3, "lora_dim": 4}, {"learning_rate": 1e-3, "lora_dim": 8}]
    for trial, p in zip(sweep["trials"], params):
        task = client.get(f"/api/tasks/{trial['id']}").json()
        assert task["status"] == "queued" and task["sweep_id"] == sweep["id"]
        assert task["config"]["learning_rate"] == p["learning_rate"] and task["config"]["lora_dim"] == p["lora_dim"]
        assert task["run_dir"].endswith(f"task-{trial['id']}")
    assert client.get("/api/sweeps").json()[0]["id"] == sweep["id"]
    assert client.get("/api/sweeps/999").status_code == 404
    stopped = client.post(f"/api/sweeps/{sweep['id']}/stop").json()
    assert stopped["status"] == "finished" and stopped["counts"] == {"stopped": 4}


def test_no_trial_is_queued_when_one_trial_is_invalid(client, data):
    r = client.post("/api/sweeps", json=body(data, space={"lora_dim": [8, -1]}))
    assert r.status_code == 400
    detail = r.json()["detail"]
    assert detail.startswith("trial 2 (lora_dim=-1): lora_dim") and r.json()["key"] == "lora_dim", detail
    assert client.get("/api/tasks").json() == [] and client.get("/api/sweeps").json() == []


@pytest.mark.parametrize("extra, key", [
    ({"mode": "max"}, "mode"), ({"early_stop": "hyperband"}, "early_stop"), ({"grace_steps": -1}, "grace_steps"),
    ({"max_concurrent": 0}, "max_concurrent"), ({"min_trials": 0}, "min_trials"), ({"metric": "loss"}, "metric"), ({"spaces": {}}, "spaces"),
    ({"random": 3, "seed": "x"}, "seed"),
])
def test_bad_sweep_settings_name_the_field(client, data, extra, key):
    r = client.post("/api/sweeps", json=body(data, **{"space": {"lora_dim": [4, 8]}, **extra}))
    assert r.status_code == 400 and r.json()["key"] == key, r.text


def test_the_metric_defaults_to_the_configs_own(client, data):
    config = {**body(data)["config"], "metric_for_best_model": "eval_token_accuracy"}
    sweep = client.post("/api/sweeps", json={"config": config, "space": {"lora_dim": [4, 8]}}).json()
    assert sweep["metric"] == "eval_token_accuracy" and sweep["mode"] == "max"
    assert client.get("/api/sweeps", params={}).json()[0]["metric"] == "eval_token_accuracy"
    r = client.post("/api/sweeps", json={"config": config, "space": {"lora_dim": [4, 8]}, "mode": "min"})
    assert r.status_code == 400 and "eval_token_accuracy is higher-is-better" in r.json()["detail"]


def test_validate_counts_the_trials_without_queuing(client, data):
    r = client.post("/api/sweeps/validate", json=body(data, space={"learning_rate": "log(1e-5,1e-3)"}, random=5, seed=3))
    assert r.status_code == 200 and r.json()["trial_count"] == 5
    assert client.get("/api/tasks").json() == []


def test_the_queue_honours_a_sweeps_max_concurrent(client, data):
    service = client.service
    service.max_concurrent = 4
    sweep = client.post("/api/sweeps", json=body(data, space={"lora_dim": [4, 8, 16]}, max_concurrent=1)).json()
    other = client.post("/api/tasks", json={"config": body(data)["config"]}).json()
    launched = []
    service.worker._launch = lambda task, gpu_ids: launched.append(task["id"])  # no process: count the claims
    service.worker._start_queued()
    first = sweep["trials"][0]["id"]
    assert launched == [first, other["id"]]  # one trial of the sweep; the task queued behind it is not held up
    service.store.update_task(first, status="succeeded")
    service.worker._start_queued()
    assert launched[-1] == sweep["trials"][1]["id"] and len(launched) == 3


def test_winner_is_the_best_metric_in_the_sweeps_mode(client, data):
    sweep = client.post("/api/sweeps", json=body(data, space={"lora_dim": [4, 8, 16]})).json()
    ids = [t["id"] for t in sweep["trials"]]
    for task_id, value, status in zip(ids, (2.5, 2.1, None), ("succeeded", "stopped", "failed")):
        client.service.store.update_task(task_id, status=status, best_metric=value)
    client.service.store.update_task(ids[1], stop_reason="pruned at step 4, eval_loss 2.1 > median 2.0")
    view = client.get(f"/api/sweeps/{sweep['id']}").json()
    assert view["winner"]["id"] == ids[1] and view["winner"]["params"] == {"lora_dim": 8}
    assert view["winner"]["config"]["lora_dim"] == 8 and view["pruned"] == 1
    assert view["trials"][1]["error"].startswith("pruned at step 4")
    assert client.get(f"/api/tasks/{ids[1]}").json()["error"].startswith("pruned at step 4")


def test_migration_5_adds_sweeps_to_a_version_4_database(tmp_path):
    db = tmp_path / "tuneforge.db"
    with sqlite3.connect(db) as conn:  # a database as tuneforge with schema version 4 left it, with one task
        for migration in MIGRATIONS[:4]:
            conn.executescript(migration)
        conn.execute("INSERT INTO tasks (name, status, config, run_dir, created_at) VALUES ('old', 'succeeded', '{}', '/r', 'x')")
        conn.execute("PRAGMA user_version = 4")
    store = Store(db)
    assert store._execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION >= 5
    old = store.list_tasks()[0]
    assert old["name"] == "old" and old["sweep_id"] is None and old["stop_reason"] is None
    assert old["trial_params"] is None and store.list_sweeps() == []
    store.close()


def test_the_cli_tells_searched_keys_from_fixed_overrides():
    from tuneforge.errors import TuneforgeError
    from tuneforge.service.sweep_cli import split_args

    space, fixed = split_args(["learning_rate=1e-4,1e-3", "lora_target_modules=[q_proj,v_proj]",
                               "lora_dim=range(4,8)", "max_steps=40"])
    assert space == {"learning_rate": "1e-4,1e-3", "lora_dim": "range(4,8)"}
    assert fixed == ["lora_target_modules=[q_proj,v_proj]", "max_steps=40"]
    with pytest.raises(TuneforgeError, match="no key to search"):
        split_args(["max_steps=40"])
    with pytest.raises(TuneforgeError, match="'lr': expected key=v1,v2"):
        split_args(["lr"])
