"""Disk-full errors become one message with exit code 4 (issue 11, case 5); counts print as integers, the
peak memory is never below the current one, evaluation lines stay short (issue 12, case 7)."""
import errno

import pytest

from tuneforge import monitor
from tuneforge.storage import StorageError, writing
from tuneforge.training.reporting import describe_splits, plural


@pytest.mark.parametrize("exc", [OSError(errno.ENOSPC, "No space left on device"),
                                 RuntimeError("[enforce fail at inline_container.cc:672] . PytorchStreamWriter "
                                              "failed writing file data/0: file write failed"),
                                 Exception("Error while serializing: IoError(Os { code: 28, kind: StorageFull, "
                                           "message: \"No space left on device\" })")])
def test_out_of_space_in_any_library_wording_is_one_message(tmp_path, exc):
    with pytest.raises(StorageError) as err:
        with writing(tmp_path / "checkpoint-4.tmp", 3 * 1024 ** 3):
            raise exc
    text = str(err.value)
    assert str(tmp_path / "checkpoint-4.tmp") in text and "GiB free" in text and "needs about 3.00 GiB" in text
    assert err.value.exit_code == 4


def test_other_errors_pass_through(tmp_path):
    with pytest.raises(ValueError):
        with writing(tmp_path):
            raise ValueError("not a disk problem")


def test_counts_are_integers_in_the_log_and_on_the_terminal(tmp_path, capsys):
    log = monitor.MetricsLog(tmp_path / "m.jsonl")
    record = log.write({"step": 3, "eval_loss": 1.23456789, "eval_trained_tokens": 1026.0, "eval_pairs": 40.0,
                        "tokens_per_second": 12.5})
    log.close()
    assert record["eval_trained_tokens"] == 1026 and isinstance(record["eval_trained_tokens"], int)
    assert record["eval_pairs"] == 40 and record["tokens_per_second"] == 12.5
    line = monitor.eval_line({"eval_loss": 0.5, "eval_rewards/accuracies": 0.75, "eval_rewards/margins": 0.1,
                              "eval_rewards/chosen": 1.0, "eval_rewards/rejected": 0.9, "eval_logps/chosen": -5.0,
                              "eval_logps/rejected": -6.0, "eval_pairs": 40})
    assert len(line) < 100 and "eval_pairs" not in line and "eval_rewards/accuracies=0.7500" in line


def test_no_progress_hides_the_bar_but_not_the_evaluations(capsys):
    show = monitor.progress_printer(bar=False)
    show.start(10)
    show({"step": 1, "loss": 2.0, "learning_rate": 1e-4})
    show({"step": 2, "eval_loss": 1.5})
    show.close()
    out = capsys.readouterr()
    assert "step 2: eval_loss=1.5000" in out.out and "step 1/" not in out.out + out.err


def test_peak_memory_is_never_below_the_current():
    mem = monitor.host_memory()
    assert mem["host_peak_rss_gib"] >= mem["host_rss_gib"] > 0


def test_singular_and_plural():
    assert plural(1, "step") == "1 step" and plural(2, "step") == "2 steps"
    assert describe_splits("rows", 1, 0, (1, 0), "").startswith("1 training row (0 truncated")
    assert "1 validation row " in describe_splits("rows", 3, 0, (1, 0), "")


def test_version(capsys):
    from tuneforge import __version__
    from tuneforge.cli import main

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0 and capsys.readouterr().out.strip() == f"tuneforge {__version__}"
