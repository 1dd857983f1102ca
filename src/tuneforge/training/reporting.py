"""What a run tells its user: the start and end banners, and the curves image that follows the metrics log.

``RunReporter`` is called with every logged record (main process only, from the loop's progress
hook): evaluation records redraw ``training_curves.png``. ``finish()`` draws the final image after the
run's end record. The experiment trackers (``report_to``, TensorBoard included) are ``trackers/``.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from ..config import TrainConfig
from ..plots import plot_metrics_file
from ..rundir import CURVES_FILE
from ..storage import writing
from .trackers import check_config


class RunReporter:
    # Redrawing the image costs about a second of CPU: during a run at most this often (always at the end).
    PLOT_INTERVAL_S = 30.0

    def __init__(self, cfg: TrainConfig, output_dir: Path, metrics_path: Path):
        self.output_dir, self.metrics_path = output_dir, metrics_path
        self._last_plot = time.monotonic()  # the first image after one interval (short runs: only at the end)
        self.title = f"{cfg.training_strategy} {cfg.method} | {cfg.model}"
        # Checked at construction too (before weights load): a config built without from_dict fails fast.
        check_config(cfg)

    @property
    def curves_path(self) -> Path:
        return self.output_dir / CURVES_FILE

    def __call__(self, record: dict) -> None:
        if any(key.startswith("eval_") for key in record) \
                and time.monotonic() - self._last_plot >= self.PLOT_INTERVAL_S:
            self.plot()

    def plot(self) -> None:
        with writing(self.curves_path):
            plot_metrics_file(self.metrics_path, self.curves_path, self.title)
        self._last_plot = time.monotonic()

    def finish(self) -> None:
        self.plot()


def chain(*callbacks: Callable[[dict], None] | None) -> Callable[[dict], None]:
    """One progress callback calling each given one in turn; its ``close`` closes those that have one."""
    active = [c for c in callbacks if c is not None]

    def call(record: dict) -> None:
        for c in active:
            c(record)

    closers = [c.close for c in active if hasattr(c, "close")]
    call.close = lambda: [close() for close in closers]  # type: ignore[attr-defined]
    return call


# ---------------------------------------------------------------------------------------------
# banners


def plural(n: int, word: str) -> str:
    """'1 row', '3 rows'."""
    return f"{n:,} {word}" if n == 1 else f"{n:,} {word}s"


def describe_splits(unit: str, n_train: int, train_truncated: int, validation: tuple[int, int] | None,
                    dropped: str) -> str:
    """The banner's data line: rows (or pairs) per split, how many were truncated, what was dropped."""
    singular = unit[:-1] if unit.endswith("s") else unit
    text = f"{n_train:,} training {singular if n_train == 1 else unit} ({train_truncated:,} truncated to seq_length)"
    if validation:
        text += (f", {validation[0]:,} validation {singular if validation[0] == 1 else unit} "
                 f"({validation[1]:,} truncated)")
    else:
        text += ", no validation set"
    return text + dropped


def describe_dtype(cfg: TrainConfig, precision) -> str:
    """How the weights are held: a quantized base is not 'float32 weights'."""
    compute = str(precision.compute_dtype).replace("torch.", "")
    if cfg.load_in_4bit:
        return f"base 4-bit NF4 (compute {compute}), adapters {compute}"
    if cfg.load_in_8bit:
        return f"base 8-bit int8 (compute {compute}), adapters {compute}"
    return f"{str(precision.load_dtype).replace('torch.', '')} weights"


def start_banner(cfg: TrainConfig, precision, accelerator, parallelism: str, loop, trainable: int, total: int,
                 data_text: str) -> str:
    """What the run is about to do: method, parameters, dtype, device, effective batch, data."""
    world, geometry = accelerator.num_processes, loop.geometry
    return (
        f"tuneforge {cfg.training_strategy} | method: {cfg.method} | model: {cfg.model}\n"
        f"  parameters: {trainable:,} trainable / {total:,} total ({100 * trainable / max(total, 1):.2f}%)\n"
        f"  dtype: {describe_dtype(cfg, precision)}, mixed precision: {precision.mixed_precision} | device: "
        f"{accelerator.device} x {world} ({parallelism})\n"
        f"  effective batch: {geometry.per_device} per device x {geometry.accumulation} "
        f"accumulation x {world} process{'es' if world != 1 else ''} = {geometry.effective(world)} | steps: "
        f"{loop.total_steps:,} ({loop.steps_per_epoch:,}/epoch)\n"
        f"  data: {data_text}")


def resume_line(checkpoint, state, total_steps: int, steps_per_epoch: int, discarded: int) -> str:
    """Where a resumed run continues."""
    return (f"  resumed from {checkpoint} at step {state.global_step:,} of {total_steps:,} (epoch {state.epoch + 1}, "
            f"{state.step_in_epoch:,} of its {plural(steps_per_epoch, 'step')} done); "
            f"{plural(discarded, 'metrics record')} after it dropped (redone)")


def end_banner(cfg: TrainConfig, result, start_step: int, peak: dict, out: Path, curves_name: str) -> str:
    """Steps run, wall time, throughput, peak memory, the best evaluation and where the output is."""
    state = result.state
    best = (f"best {cfg.metric_for_best_model} {state.best_metric:.4f} at step {state.best_step} "
            f"(saved as the run's output)" if state.best_step is not None else "no validation set")
    gpu = f", peak GPU {peak['gpu_peak_allocated_gib']:.2f} GiB" if "gpu_peak_allocated_gib" in peak else ""
    ran = state.global_step - start_step
    steps = plural(ran, "step") + (f" (steps {start_step + 1}-{state.global_step}, resumed)" if start_step else "")
    return (f"done: {steps} in {result.wall_time:.1f} s, {result.tokens_per_second:,.0f} tokens/s, "
            f"peak host memory {peak.get('host_peak_rss_gib', 0):.2f} GiB (whole process){gpu}\n"
            f"  {best}\n  output: {out} (curves: {curves_name})")
