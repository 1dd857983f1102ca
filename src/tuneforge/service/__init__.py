"""The task service: a restart-safe queue of training tasks with a monitoring record, an HTTP API and a CLI.

Layout (one job per module):

- what it is told and keeps: ``settings``, ``store`` (SQLite index of tasks, data sets, sweeps, deployments),
  ``errors`` (each with its HTTP status), ``paths`` (which paths a request may name);
- the service object: ``core`` (``TaskService``: every operation, called by the API and by the pages it is
  handed to), ``taskconfig`` (the config file a task trains from), ``uploads`` and ``dataadapter`` (data sets:
  receiving, checking, preview and stats), ``estimate`` (the memory estimate), ``downloads`` (a task's outputs
  list and files), ``runfiles`` (a task's summary columns from its run directory);
- the queue: ``worker`` (starts, follows and finishes tasks), ``placement`` (GPUs and memory), ``executors``
  (local process groups; Ray Jobs), ``taskmain`` (the process a task runs), ``sampler`` (resources.jsonl);
- beside training: ``deploy`` (serve processes and the chat proxy), ``children``, ``exports``, ``evaluations``
  (``tuneforge export`` / ``eval`` of a finished task), ``sweeps``, ``pruning``, ``sweep_cli``;
- its faces: ``api`` (FastAPI: ``create_api``), ``events`` (server-sent events), ``preimport``,
  ``client`` (the HTTP client, and ``read_task`` from the service's home: what other floors may use) and
  ``cli`` (``tuneforge tasks``). ``tuneforge.apps`` composes the API with the console's pages and holds the
  ``tuneforge console`` command.

Importing this package imports nothing heavy: a task's own process imports it too.
"""

STATUSES = ("queued", "running", "succeeded", "failed", "stopped", "interrupted")
QUEUED, RUNNING, SUCCEEDED, FAILED, STOPPED, INTERRUPTED = STATUSES
FINAL_STATUSES = (SUCCEEDED, FAILED, STOPPED, INTERRUPTED)
RESUMABLE = (INTERRUPTED, STOPPED, FAILED)  # a resume queues these again from their last checkpoint
# The states of a command the service runs for a finished task (a GGUF export, an evaluation); "none" when this
# service started none for it.
COMMAND_STATES = ("none", "running", "done", "failed")
COMMAND_NONE, COMMAND_RUNNING, COMMAND_DONE, COMMAND_FAILED = COMMAND_STATES
# Two more vocabularies that share words with the task statuses, spelled here too so that no module of the service
# re-spells a status word (tests/unit/service/test_status_words.py): a deployment's states (deploy.py) and a
# sweep's stored state (sweeps.py; active, or stopped by request).
DEPLOYMENT_STATES = ("starting", "ready", "stopped", "failed")
DEPLOY_STARTING, DEPLOY_READY, DEPLOY_STOPPED, DEPLOY_FAILED = DEPLOYMENT_STATES
DEPLOY_LIVE = (DEPLOY_STARTING, DEPLOY_READY)  # a server process this service runs or waits for
SWEEP_STATES = ("active", "stopped")
SWEEP_ACTIVE, SWEEP_STOPPED = SWEEP_STATES


def vocabulary() -> dict:
    """The service's words the console's pages show and decide by (docs/architecture.md, "Where a page gets its
    words"): task statuses and what each allows, and the states of a task's commands. JSON-ready."""
    return {"task_statuses": {"all": list(STATUSES), "final": list(FINAL_STATUSES),
                              "active": [s for s in STATUSES if s not in FINAL_STATUSES],
                              "resumable": list(RESUMABLE), "queued": QUEUED, "running": RUNNING,
                              "succeeded": SUCCEEDED},
            "command_states": {"all": list(COMMAND_STATES), "running": COMMAND_RUNNING, "failed": COMMAND_FAILED}}
