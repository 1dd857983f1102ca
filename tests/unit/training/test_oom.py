"""Out of memory (faked): a clear message with the numbers and advice, exit code 3; with
per_device_train_batch_size: auto the micro-batch shrinks and accumulation keeps the effective batch."""
import json

import pytest
import torch

import tuneforge
from tuneforge.cli import main
from tuneforge.config import from_dict
from tuneforge.errors import ConfigError
from tuneforge.training import batch_fit
from tuneforge.training.batch_fit import fit_micro_batch, geometry_for, is_oom, oom_message, rechunk

CPU_OOM = RuntimeError("[enforce fail at alloc_cpu.cpp:117] data. DefaultCPUAllocator: can't allocate memory: "
                       "you tried to allocate 68719476736 bytes.")


def test_is_oom_recognises_cuda_and_cpu_allocator_errors_only():
    assert is_oom(torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"))
    assert is_oom(CPU_OOM)
    assert not is_oom(RuntimeError("mat1 and mat2 shapes cannot be multiplied"))
    assert not is_oom(ValueError("out of memory"))


def test_message_names_batch_size_seq_length_and_advice(tmp_path):
    cfg = from_dict({"train_data": __file__, "seq_length": 2048, "lora_dim": 16})
    msg = oom_message(cfg, 8, 2)
    for part in ("per_device_train_batch_size=8", "seq_length=2048", "gradient_accumulation_steps (now 2)",
                 "per_device_train_batch_size: auto", "gradient_checkpointing: true", "load_in_4bit: true"):
        assert part in msg


def test_fit_halves_until_it_fits():
    tried = []

    def attempt(n):
        tried.append(n)
        if n > 10:
            raise torch.OutOfMemoryError("CUDA out of memory")

    oom = []
    assert fit_micro_batch(attempt, 64, lambda n, e: oom.append(n)) == 8
    assert tried == [64, 32, 16, 8] and oom == [64, 32, 16]
    with pytest.raises(RuntimeError):  # not an OOM: surfaces unchanged
        fit_micro_batch(lambda n: (_ for _ in ()).throw(RuntimeError("shape mismatch")), 4, lambda n, e: None)


def test_geometry_keeps_the_effective_batch():
    base = {"train_data": __file__}
    auto = from_dict({**base, "per_device_train_batch_size": "auto", "effective_batch_size": 32})
    g = geometry_for(auto, world=1, fitted=12)  # 12 fit; the largest divisor of 32 not above 12 is 8
    assert (g.per_device, g.accumulation, g.effective(1)) == (8, 4, 32)
    g = geometry_for(auto, world=2, fitted=64)
    assert (g.per_device, g.accumulation) == (16, 1)
    keep_accumulation = from_dict({**base, "per_device_train_batch_size": "auto", "gradient_accumulation_steps": 3})
    assert geometry_for(keep_accumulation, world=1, fitted=6) == batch_fit.BatchGeometry(6, 3)
    fixed = from_dict({**base, "per_device_train_batch_size": 4, "effective_batch_size": 32})
    assert geometry_for(fixed, world=2) == batch_fit.BatchGeometry(4, 4)
    with pytest.raises(ConfigError, match="not a multiple"):
        geometry_for(from_dict({**base, "per_device_train_batch_size": 3, "effective_batch_size": 32}), world=1)


def test_rechunk_keeps_rows_and_order():
    assert rechunk([[5, 4, 3], [2, 1]], 2) == [[5, 4], [3], [2, 1]]


@pytest.fixture
def data(tmp_path, write_jsonl):
    return write_jsonl(tmp_path / "d.jsonl", [{"instruction": f"q{i}", "output": f"answer {i}"} for i in range(16)])


def _fake_oom_above(monkeypatch, limit):
    """Every forward with more than ``limit`` rows runs 'out of memory', as a GPU would."""
    from tuneforge.training.sft import SFTRecipe

    real = SFTRecipe.loss

    def loss(self, module, batch):
        if batch.n_rows > limit:
            raise torch.OutOfMemoryError(f"CUDA out of memory. Tried to allocate {batch.n_rows} GiB")
        return real(self, module, batch)

    monkeypatch.setattr(SFTRecipe, "loss", loss)


def test_auto_batch_size_finds_what_fits_and_keeps_the_effective_batch(tmp_path, data, monkeypatch, capsys):
    _fake_oom_above(monkeypatch, 3)
    out = tmp_path / "o"
    summary = tuneforge.train({"train_data": str(data), "output_dir": str(out), "lora_dim": 4, "max_steps": 2,
                               "per_device_train_batch_size": "auto", "effective_batch_size": 8}, progress=False)
    text = capsys.readouterr().out
    assert summary.steps == 2
    # starts at min(64, 16 rows, effective 8) = 8; 8 and 4 "run out", 2 fits: 2 x 4 accumulation
    assert "8 rows ran out of memory, trying 4" in text and "4 rows ran out of memory, trying 2" in text
    assert "using 2 x 4 accumulation x 1 processes = 8 rows per step" in text
    start = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert start["effective_batch_size"] == 8


def test_oom_mid_run_with_auto_shrinks_and_continues(tmp_path, data, monkeypatch):
    # the probe passes (4 rows), later steps "run out" above 2 rows: e.g. fragmentation on a long run
    from tuneforge.training import loop as loop_mod

    real_step = loop_mod.TrainingLoop._forward_backward

    def forward_backward(self, batches, total_units):
        if self.state.global_step >= 1 and max(b.n_rows for b in batches) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real_step(self, batches, total_units)

    monkeypatch.setattr(loop_mod.TrainingLoop, "_forward_backward", forward_backward)
    monkeypatch.setattr(batch_fit, "AUTO_START", 4)
    out = tmp_path / "o"
    summary = tuneforge.train({"train_data": str(data), "output_dir": str(out), "lora_dim": 4, "max_steps": 3,
                               "per_device_train_batch_size": "auto", "logging_steps": 1}, progress=False)
    assert summary.steps == 3
    records = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    shrinks = [r for r in records if r.get("event") == "oom_shrink"]
    assert len(shrinks) == 1 and shrinks[0]["micro_batch_size"] == 2
    assert sum(1 for r in records if "loss" in r) == 3  # every step trained, none skipped


def test_oom_with_a_fixed_batch_is_a_clear_exit_3(tmp_path, data, monkeypatch, capsys):
    _fake_oom_above(monkeypatch, 2)
    code = main(["train", f"train_data={data}", f"output_dir={tmp_path / 'o'}", "lora_dim=4", "max_steps=2",
                 "per_device_train_batch_size=4", "seq_length=256", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 3
    assert "out of memory in step 1 with per_device_train_batch_size=4, seq_length=256" in err
    assert "Traceback" not in err


def test_cpu_allocator_failure_is_reported_the_same_way(tmp_path, data, monkeypatch, capsys):
    from tuneforge.training.sft import SFTRecipe

    def loss(self, module, batch):
        raise CPU_OOM

    monkeypatch.setattr(SFTRecipe, "loss", loss)
    code = main(["train", f"train_data={data}", f"output_dir={tmp_path / 'o'}", "lora_dim=4", "max_steps=2",
                 "--no-progress"])
    assert code == 3 and "out of memory" in capsys.readouterr().err
