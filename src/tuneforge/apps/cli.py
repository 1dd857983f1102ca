"""``tuneforge console``: the task service (API, worker) and the web console's pages in one process, the app
built by ``tuneforge.apps.create_app``."""
from __future__ import annotations

import argparse
import secrets
import socket
from pathlib import Path

from ..errors import TuneforgeError
from ..service.settings import DEFAULT_HOST, DEFAULT_PORT, Settings, default_home

_HELD: list[int] = []  # descriptors of locks this process keeps for its lifetime


def _check_port(host: str, port: int) -> None:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise TuneforgeError(f"--host {host} --port {port}: cannot listen there ({exc.strerror}); "
                                 "choose another --port or stop the other service.") from None


def _lock_home(home: Path):
    """One console per home: a second one would re-attach and finish the first one's tasks. The OS drops the
    lock when the process ends in any way, so a killed console never blocks the next."""
    import fcntl
    import os

    home.mkdir(parents=True, exist_ok=True)
    fd = os.open(home / "console.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        holder = os.read(fd, 64).decode(errors="replace").strip() or "?"
        os.close(fd)
        raise TuneforgeError(f"--home {home}: another tuneforge console (pid {holder}) is using it; stop it or "
                             "choose another --home.") from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd  # kept open for the life of the process


def settings_from_args(args: argparse.Namespace) -> Settings:
    token = args.token
    from ..httpguard import is_loopback  # one rule for every server tuneforge starts

    if not token and not is_loopback(args.host):
        token = secrets.token_urlsafe(24)
        print(f"tuneforge console: listening on {args.host}, which is not loopback: every request needs this token "
              f"(shown once):\n  {token}", flush=True)
    for d in args.allow_dir or []:
        if not Path(d).expanduser().is_dir():
            raise TuneforgeError(f"--allow-dir {d}: no such directory.")
    return Settings(home=Path(args.home) if args.home else default_home(), host=args.host, port=args.port,
                    max_concurrent=args.max_concurrent, executor=args.executor, ray_address=args.ray_address,
                    token=token, allow_dirs=[Path(d) for d in args.allow_dir or []],
                    sample_interval=args.sample_interval, stop_grace=args.stop_grace,
                    upload_limit_mb=args.upload_limit_mb, max_body_mb=args.max_body_mb,
                    allowed_hosts=list(args.allowed_host or []), allow_remote_code=args.allow_remote_code)


def _cmd_console(args: argparse.Namespace) -> int:
    import uvicorn

    from . import create_app

    if args.max_concurrent is not None and args.max_concurrent < 1:
        raise TuneforgeError(f"--max-concurrent {args.max_concurrent}: must be >= 1.")
    settings = settings_from_args(args)
    _HELD.append(_lock_home(settings.home))  # held until the process exits
    _check_port(settings.host, settings.port)
    app = create_app(settings)
    service = app.state.service
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    print(f"tuneforge console: http://{host}:{settings.port}  (API /api, docs /docs)\n"
          f"  home: {settings.home} | executor: {service.executor.name} | max concurrent tasks: "
          f"{service.max_concurrent} | GPUs: {service.gpus}", flush=True)
    # Open event streams must not hold a shutdown: tasks keep running anyway and are re-attached at the next start.
    uvicorn.run(app, host=settings.host, port=settings.port, log_level=args.log_level, timeout_graceful_shutdown=3)
    return 0


def add_parser(sub) -> None:
    p = sub.add_parser("console", help="start the task service: queue, worker, HTTP API and web console",
                       description="Run the task service in this process: the queue and its worker, the HTTP API "
                                   "under /api and the web console's pages. Tasks keep running when it stops and are "
                                   "re-attached when it starts again.")
    p.add_argument("--host", default=DEFAULT_HOST,
                   help="address to listen on (default 127.0.0.1; any other needs a token)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    p.add_argument("--home", help="service home: tuneforge.db, runs/, datasets/ (default $TUNEFORGE_HOME or "
                                  "~/.tuneforge)")
    p.add_argument("--max-concurrent", type=int,
                   help="tasks running at once (default: one per GPU, one on a CPU-only machine)")
    p.add_argument("--executor", choices=("local", "ray"), default="local",
                   help="run tasks as local processes or Ray jobs")
    p.add_argument("--ray-address", help="Ray job server (default $RAY_ADDRESS or http://127.0.0.1:8265)")
    p.add_argument("--token",
                   help="require this token on every request (generated and printed when --host is not loopback)")
    p.add_argument("--allow-dir", action="append", metavar="DIR",
                   help="a directory task configs may read data/models from besides the home (repeatable)")
    p.add_argument("--sample-interval", type=float, default=2.0,
                   help="seconds between resources.jsonl rows (default 2)")
    p.add_argument("--stop-grace", type=float, default=30.0,
                   help="seconds from SIGTERM to SIGKILL when stopping a task (default 30)")
    p.add_argument("--upload-limit-mb", type=float, default=512.0, help="largest dataset upload in MiB (default 512)")
    p.add_argument("--max-body-mb", type=float, default=8.0,
                   help="largest body of any other request in MiB (default 8); larger is refused with 413")
    p.add_argument("--allowed-host", action="append", metavar="NAME",
                   help="a Host name to answer besides the listening address, e.g. a reverse proxy's (repeatable)")
    p.add_argument("--allow-remote-code", action="store_true",
                   help="with a token: let tasks set trust_remote_code (model code from the hub runs on this machine)")
    p.add_argument("--log-level", default="warning", choices=("critical", "error", "warning", "info", "debug"),
                   help="HTTP server log level (default warning)")
    p.set_defaults(func=_cmd_console)


