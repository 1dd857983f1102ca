"""``tuneforge serve RUN [RUN ...]``: an OpenAI-compatible server for trained runs."""
from __future__ import annotations

import argparse
import os
import signal
import socket
import sys
import threading
from pathlib import Path

from ..errors import ConfigError

API_KEY_ENV = "TUNEFORGE_API_KEY"


def api_key(args: argparse.Namespace) -> str | None:
    """``--api-key`` or $TUNEFORGE_API_KEY; required unless the server listens on loopback only."""
    from ..httpguard import is_loopback  # one rule for every server tuneforge starts

    key = args.api_key if args.api_key is not None else os.environ.get(API_KEY_ENV)
    if key is not None and not key.strip():
        raise ConfigError("--api-key is empty.")
    if key is None and not is_loopback(args.host):
        raise ConfigError(f"--host {args.host}: other machines could reach this server; give --api-key KEY "
                          f"(or set ${API_KEY_ENV}), or keep --host 127.0.0.1.")
    return key


def check_limits(args: argparse.Namespace) -> None:
    for flag, value in (("--max-batch-size", args.max_batch_size), ("--max-concurrent", args.max_concurrent),
                        ("--default-max-tokens", args.default_max_tokens)):
        if value < 1:
            raise ConfigError(f"{flag}={value}: must be >= 1.")
    if not 0 < args.max_body_mb < float("inf"):
        raise ConfigError(f"--max-body-mb={args.max_body_mb}: must be a positive number of MiB.")
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port={args.port}: must be within 0..65535 (0 picks a free port).")


def bind(host: str, port: int) -> socket.socket:
    """Listen before loading any model, so a taken port fails in a second, not after the load."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        sock = socket.socket(family, kind, proto)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        raise ConfigError(f"--host {host} --port {port}: cannot listen there ({exc.strerror or exc}).") from None
    sock.listen(2048)
    return sock


def _interrupt(_signum, _frame) -> None:
    raise KeyboardInterrupt


def _serve_transformers(args: argparse.Namespace, specs, key: str | None) -> int:
    import torch
    import uvicorn

    from .app import ServerSettings, create_app
    from .loading import TrustSettings, load_models

    if threading.current_thread() is threading.main_thread():
        # SIGTERM (a service or `kill` stopping the server) ends it like Ctrl-C: graceful, exit code 0
        signal.signal(signal.SIGTERM, _interrupt)
    sock = bind(args.host, args.port)
    device = torch.device(args.device) if args.device else None
    models = load_models(specs, trust=TrustSettings(args.trust_remote_code, args.allow_pickle_weights),
                         dtype=args.dtype, device=device, max_model_len=args.max_model_len,
                         log=lambda line: print(line, file=sys.stderr, flush=True))
    settings = ServerSettings(key, args.max_concurrent, args.max_batch_size, args.default_max_tokens,
                              max_body_mb=args.max_body_mb, host=args.host,
                              allowed_hosts=tuple(args.allowed_host or ()))
    app = create_app(models, settings)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {', '.join(m.name for m in models)} at http://{shown}:{port}/v1 "
          f"(max batch {args.max_batch_size}, max concurrent "
          f"{args.max_concurrent}){'; API key required' if key else ''}",
          flush=True)
    config = uvicorn.Config(app, log_level=args.log_level, access_log=args.access_log, timeout_graceful_shutdown=5)
    try:
        uvicorn.Server(config).run(sockets=[sock])
    except KeyboardInterrupt:  # uvicorn re-raises the Ctrl-C it shut down on; that is the normal way to stop
        pass
    print("server stopped", file=sys.stderr, flush=True)
    return 0


def task_run(task_id: int, home: str | None) -> str:
    """``NAME=RUN_DIR`` of a succeeded task of the task service (``tuneforge console``), as the service's client
    reads it from the service's home."""
    from ..service.client import TaskNotFound, read_task
    from .loading import NAME_PATTERN

    try:
        task = read_task(task_id, home)
    except TaskNotFound as exc:
        raise ConfigError(f"--task {task_id}: {exc}") from None
    if task["status"] != "succeeded":
        raise ConfigError(f"--task {task_id}: the task is {task['status']}; "
                          "only a succeeded task has a model to serve.")
    name = task.get("name") or ""
    return f"{name if NAME_PATTERN.match(name) else Path(task['run_dir']).name}={task['run_dir']}"


def _cmd(args: argparse.Namespace) -> int:
    from .loading import parse_specs

    runs = list(args.runs) + [task_run(t, args.home) for t in args.task or []]
    if not runs:
        raise ConfigError("give at least one RUN directory (or --task ID).")
    specs = parse_specs(runs, args.name)
    check_limits(args)
    key = api_key(args)
    if args.backend == "vllm":
        from .vllm import run_vllm

        return run_vllm(specs, args, key)
    if getattr(args, "own_process", False) and "bitsandbytes" not in sys.modules:
        # Serving never loads quantized weights (a QLoRA adapter runs on its 16/32-bit base), and importing
        # bitsandbytes through peft costs seconds of start-up.
        sys.modules["bitsandbytes"] = None  # type: ignore[assignment]
    return _serve_transformers(args, specs, key)


def add_parser(subparsers) -> None:
    p = subparsers.add_parser(
        "serve", help="serve runs through an OpenAI-compatible API (chat, completions, streaming)",
        description="Serve run directories (LoRA/QLoRA adapters with their base, full models) or plain model "
                    "directories at /v1/chat/completions, /v1/completions and /v1/models. Runs whose adapters share "
                    "a base load it once. Each run's model id is its directory name (or NAME in NAME=PATH, or "
                    "--name). Chat prompts use the run's chat template and system_prompt, as in training.")
    p.add_argument("runs", nargs="*", metavar="RUN", help="run or model directory, optionally as NAME=PATH")
    p.add_argument("--task", type=int, action="append", metavar="ID",
                   help="also serve the output of this succeeded task of the task service (repeatable)")
    p.add_argument("--home", default=None,
                   help="the task service's home for --task (default $TUNEFORGE_HOME or ~/.tuneforge)")
    p.add_argument("--name", action="append", help="model id for the RUN in the same position (repeat per RUN)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs --api-key)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument("--api-key", default=None,
                   help=f"clients must send 'Authorization: Bearer KEY' (or set ${API_KEY_ENV})")
    p.add_argument("--engine", dest="backend", choices=("transformers", "vllm"), default="transformers",
                   help="transformers (default; CPU or GPU) or vllm (GPU; needs 'pip install vllm')")
    p.add_argument("--max-batch-size", type=int, default=8, help="sequences generated together per model (default 8)")
    p.add_argument("--max-concurrent", type=int, default=64,
                   help="requests in progress at once; more are answered 429 (default 64)")
    p.add_argument("--default-max-tokens", type=int, default=512,
                   help="tokens a chat answer may have when the request gives no max_tokens (default 512)")
    p.add_argument("--max-model-len", type=int, default=None, help="lower the context limit (prompt + answer, tokens)")
    p.add_argument("--dtype", choices=("auto", "float32", "bfloat16", "float16"), default="auto",
                   help="weights precision (auto: bf16 on a capable GPU, float32 otherwise)")
    p.add_argument("--device", default=None, help="torch device (default: cuda when available, else cpu)")
    p.add_argument("--trust-remote-code", action="store_true",
                   help="run model code shipped with the model (never taken from a run's saved config)")
    p.add_argument("--allow-pickle-weights", action="store_true", help="also load pickle .bin weights you trust")
    p.add_argument("--vllm-args", default="", metavar="'ARGS'",
                   help="extra arguments for vLLM's server, as one quoted string (--engine vllm)")
    p.add_argument("--max-body-mb", type=float, default=4.0,
                   help="largest request body in MiB (default 4); a larger one is refused with 413 before it is read")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="a Host name to answer besides the listening address, e.g. a reverse proxy's (repeatable)")
    p.add_argument("--log-level", choices=("critical", "error", "warning", "info", "debug"), default="warning")
    p.add_argument("--access-log", action="store_true", help="log every request")
    p.set_defaults(func=_cmd)
