"""The resources.jsonl row of a process tree, and the path policy of a service with a token."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tuneforge.service.paths import PathPolicy, PathRefused
from tuneforge.service.sampler import ResourceSampler, nvml, sample
from tuneforge.service.settings import Settings


def test_sample_counts_the_whole_process_tree(tmp_path):
    child = subprocess.Popen([sys.executable, "-c", "b = bytearray(200 * 2**20); import time; time.sleep(30)"])
    try:
        time.sleep(1.0)
        row = sample(os.getpid())
        alone = sample(child.pid)
        assert {"time", "host_rss_gib", "host_total_gib", "host_available_gib"} <= set(row)
        assert row["host_rss_gib"] >= alone["host_rss_gib"] >= 0.19  # the child's 200 MiB count in the tree
        assert 0 < row["host_available_gib"] <= row["host_total_gib"]
        if not nvml().available:
            assert not any(k.startswith("gpu") for k in row)
    finally:
        child.kill()
        child.wait()


def test_sampler_thread_appends_rows(tmp_path):
    path = tmp_path / "resources.jsonl"
    sampler = ResourceSampler(os.getpid(), path, interval=0.05).start()
    time.sleep(0.4)
    sampler.stop()
    assert len(path.read_text().splitlines()) >= 3


def test_path_policy_with_a_token(tmp_path):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    (allowed / "d.jsonl").write_text("{}\n")
    (allowed / "escape").symlink_to("/etc")
    policy = PathPolicy(Settings(home=tmp_path / "home", token="t", allow_dirs=[allowed]))
    assert policy.resolve({"train_data": "d.jsonl"})["train_data"] == str(allowed / "d.jsonl")
    assert policy.resolve({"model": "Qwen/Qwen2.5-0.5B-Instruct"})["model"] == "Qwen/Qwen2.5-0.5B-Instruct"
    assert policy.resolve({"model": "builtin:toy", "deepspeed": "zero2"})["deepspeed"] == "zero2"
    for key, value in (("train_data", str(allowed / "escape" / "passwd")), ("train_data", "../../etc/passwd"),
                       ("model", "../secret-model"), ("deepspeed", "/etc/ds.json"),
                       ("resume_from_checkpoint", "/tmp/x")):
        with pytest.raises(PathRefused) as err:
            policy.resolve({key: value})
        assert err.value.key == key
    # train_data as a list of files or {path, weight} mappings is checked item by item
    assert policy.resolve({"train_data": ["d.jsonl", {"path": "d.jsonl", "weight": 0.5}]})["train_data"] == [
        str(allowed / "d.jsonl"), {"path": str(allowed / "d.jsonl"), "weight": 0.5}]
    for value, key in ((["d.jsonl", "/etc/passwd"], "train_data[1]"), ([{"path": "/etc/passwd"}], "train_data[0].path")):
        with pytest.raises(PathRefused) as err:
            policy.resolve({"train_data": value})
        assert err.value.key == key
    with pytest.raises(PathRefused) as err:  # the cache is written: never outside the service's home
        policy.resolve({"data_cache_dir": "/tmp/elsewhere"})
    assert err.value.key == "data_cache_dir"
    assert policy.resolve({"model": "qwen2.5-0.5b-instruct"})["model"] == "qwen2.5-0.5b-instruct"  # a gallery id
    open_policy = PathPolicy(Settings(home=tmp_path / "home"))  # no token: loopback users name any file
    assert open_policy.resolve({"train_data": "/etc/hostname"})["train_data"] == "/etc/hostname"


class _FakeNvml:
    """Just enough of pynvml for one device with one of our processes on it."""

    class NVMLError(Exception):
        pass

    def __init__(self, pid):
        self.pid = pid

    def nvmlDeviceGetHandleByIndex(self, i):
        return i

    def nvmlDeviceGetMemoryInfo(self, h):
        return type("M", (), {"used": 6 * 2**30, "total": 80 * 2**30})()

    def nvmlDeviceGetUtilizationRates(self, h):
        return type("U", (), {"gpu": 93})()

    def nvmlDeviceGetComputeRunningProcesses(self, h):
        return [type("P", (), {"pid": self.pid, "usedGpuMemory": 4 * 2**30})(),
                type("P", (), {"pid": 1, "usedGpuMemory": 2**30})()]


def test_gpu_fields_per_device_and_per_task(monkeypatch):
    from tuneforge.service import sampler

    fake = sampler.Nvml.__new__(sampler.Nvml)
    fake.available, fake.count, fake._nv = True, 1, _FakeNvml(os.getpid())
    monkeypatch.setattr(sampler, "_NVML", fake)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    row = sampler.sample(os.getpid())
    assert row["gpu0_used_gib"] == 6.0 and row["gpu0_total_gib"] == 80.0 and row["gpu0_util"] == 93.0
    assert row["gpu0_task_gib"] == 4.0  # only this process tree's memory, not pid 1's
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert not any(k.startswith("gpu") for k in sampler.sample(os.getpid()))
