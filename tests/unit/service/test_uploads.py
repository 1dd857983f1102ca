"""Publishing an uploaded data set under a name nobody else takes, and refusing a file changed afterwards."""
from __future__ import annotations

import threading

import pytest

from tuneforge.service import uploads
from tuneforge.service.core import TaskService
from tuneforge.service.errors import BadRequest, Conflict, TooLarge
from tuneforge.service.settings import Settings


def test_concurrent_publishes_of_one_name_each_get_their_own_file(tmp_path):
    incoming = tmp_path / ".incoming"
    received = [uploads.receive(f"row {i}\n".encode(), incoming, ".jsonl", 1000)[0] for i in range(16)]
    barrier, published = threading.Barrier(16), {}

    def publish(i):
        barrier.wait()
        published[i] = uploads.publish(received[i], tmp_path, "train", ".jsonl", taken=lambda _p: False)

    threads = [threading.Thread(target=publish, args=(i,)) for i in range(16)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len({p.name for p in published.values()}) == 16
    assert all(p.read_text() == f"row {i}\n" for i, p in published.items())
    assert not list(incoming.iterdir())


def test_a_name_owned_by_a_row_is_skipped_and_an_existing_file_never_replaced(tmp_path):
    (tmp_path / "train.jsonl").write_text("someone else's file\n")
    tmp = uploads.receive(b"new\n", tmp_path / ".incoming", ".jsonl", 100)[0]
    final = uploads.publish(tmp, tmp_path, "train", ".jsonl", taken=lambda p: p.endswith("train-2.jsonl"))
    assert final.name == "train-3.jsonl" and final.read_text() == "new\n"
    assert (tmp_path / "train.jsonl").read_text() == "someone else's file\n" and not (tmp_path / "train-2.jsonl").exists()


def test_receive_stops_at_the_limit_and_leaves_nothing(tmp_path):
    with pytest.raises(TooLarge):
        uploads.receive(b"x" * 5000, tmp_path, ".jsonl", 4096)
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("name", ["", "a\x00.jsonl", "b" * 256 + ".jsonl", "data.txt"])
def test_bad_upload_names(name):
    with pytest.raises(BadRequest):
        uploads.upload_name(name)


def test_long_names_are_shortened_to_a_safe_stem():
    stem, suffix = uploads.upload_name("../../" + "é" * 10 + "x" * 200 + ".JSONL")
    assert suffix == ".jsonl" and len(stem) <= uploads.MAX_STEM and stem.strip("_x") == ""


def test_a_queued_task_whose_data_set_changed_fails_at_start_with_the_reason(tmp_path):
    service = TaskService(Settings(home=tmp_path / "home"))
    try:
        dataset = service.add_dataset("d.jsonl", b'{"instruction": "q", "output": "a"}\n' * 4)
        config = {"model": "builtin:toy", "train_data": dataset["path"], "lora_dim": 4, "max_steps": 1}
        task = service.submit(config)  # queued: no worker runs in this test
        with open(dataset["path"], "ab") as fh:
            fh.write(b'{"instruction": "changed", "output": "x"}\n')
        with pytest.raises(Conflict, match="changed on disk"):
            service.submit(config)
        service.worker._start_queued()
        failed = service.get_task(task["id"])
        assert failed["status"] == "failed" and "changed on disk" in failed["error"]
    finally:
        service.close()
