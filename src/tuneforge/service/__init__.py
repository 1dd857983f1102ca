"""The task service: a restart-safe queue of training tasks with a monitoring record, an HTTP API and a CLI.

Layout (one job per module): ``settings`` (what the service is told), ``store`` (SQLite index of tasks),
``runfiles`` (reading a run directory), ``sampler`` (resources.jsonl), ``taskmain`` (the process a task runs),
``executors`` (local process groups; Ray Jobs), ``worker`` (the queue), ``core`` (the service object),
``paths`` (which paths a request may name), ``datasets`` (uploads, preview and stats), ``api`` (FastAPI),
``events`` (server-sent events), ``client`` and ``cli`` (the ``tuneforge console`` / ``tuneforge tasks``
commands). Importing this package imports nothing heavy: a task's own process imports it too.
"""

STATUSES = ("queued", "running", "succeeded", "failed", "stopped", "interrupted")
FINAL_STATUSES = ("succeeded", "failed", "stopped", "interrupted")
