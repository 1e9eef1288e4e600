"""Serve PruneLab to a room: several app processes behind nginx, sharing one results cache.

One Streamlit process runs every session in threads that share one interpreter lock; a room
outgrows it. This starts ``--processes`` copies of the app (``python -m ui.serve``) on loopback ports, all
with the same ``PRUNELAB_CACHE_DIR`` (a result computed by one is served by the others), and nginx
in the foreground with sticky sessions (see ``deploy/nginx.conf.template``). Everything nginx
writes lives in a temporary directory; Ctrl-C stops nginx and every app process.

    python -m deploy.run_workshop --processes 2 --port 8501     # or: make workshop PROCESSES=2
"""

from __future__ import annotations

import argparse
import contextlib
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = Path(__file__).with_name("nginx.conf.template")
COOKIE = "prunelab_backend"
BACKEND_HEADER = "X-PruneLab-Backend"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def backend_name(index: int) -> str:
    """The cookie value that pins a browser to the ``index``-th process."""
    return f"b{index}"


def render_config(
    backend_ports: list[int], listen: str, run_dir: Path, max_upload_mb: int = 200, user: str | None = None
) -> str:
    """The nginx configuration for these backends, listening on ``listen`` (host:port)."""
    if not backend_ports:
        raise ValueError("at least one backend port is needed")
    addresses = [f"127.0.0.1:{port}" for port in backend_ports]
    pinned = []
    for i, address in enumerate(addresses):
        backups = "".join(f"        server {other} backup;\n" for other in addresses if other != address)
        pinned.append(f"    upstream prunelab_{backend_name(i)} {{\n        server {address};\n{backups}    }}")
    values = {
        "RUN_DIR": str(run_dir),
        "USER": f"user {user};" if user else "",
        "LISTEN": listen,
        "MAX_UPLOAD_MB": str(max_upload_mb),
        "ANY_SERVERS": "\n".join(f"        server {a};" for a in addresses),
        "PINNED_UPSTREAMS": "\n\n".join(pinned),
        "COOKIE_MAP": "\n".join(
            f"        {backend_name(i)} prunelab_{backend_name(i)};" for i in range(len(addresses))
        ),
        "SERVED_BY_MAP": "\n".join(f'        "~{re.escape(a)}$" {backend_name(i)};' for i, a in enumerate(addresses)),
    }
    text = TEMPLATE.read_text()
    for name, value in values.items():
        text = text.replace("{{" + name + "}}", value)
    return text


@dataclass
class Backend:
    name: str
    port: int
    process: subprocess.Popen
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        """What the process has written to stdout and stderr so far (only with ``log_dir``)."""
        return self.log_path.read_text(errors="replace") if self.log_path else ""


@dataclass
class Workshop:
    url: str
    backends: list[Backend]
    cache_dir: Path
    run_dir: Path
    nginx: subprocess.Popen
    _files: list = field(default_factory=list)

    def backend(self, name: str) -> Backend:
        return next(b for b in self.backends if b.name == name)


def _wait_healthy(url: str, processes: list[subprocess.Popen], what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        with contextlib.suppress(OSError):
            if urllib.request.urlopen(f"{url}/_stcore/health", timeout=2).read() == b"ok":
                return
        for p in processes:
            if p.poll() is not None:
                raise RuntimeError(f"{what} exited with status {p.returncode} before answering {url}/_stcore/health")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not answer {url}/_stcore/health within {timeout_s:.0f} s")
        time.sleep(0.3)


def _stop(process: subprocess.Popen, sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _nginx_user() -> str | None:
    """As root, nginx's workers switch to ``nobody``; as anyone else they stay that user."""
    return "nobody nogroup" if os.geteuid() == 0 else None


def _backend_env(cache_dir: Path, processes: int, threads: int) -> dict[str, str]:
    return {
        **os.environ,
        "PRUNELAB_CACHE_DIR": str(cache_dir),
        # A room's server takes no model files unless asked to (PRUNELAB_UPLOADS=1 make workshop).
        "PRUNELAB_UPLOADS": os.environ.get("PRUNELAB_UPLOADS", "0"),
        # One secret for all: anything one process signs (st.login cookies) holds on another.
        "STREAMLIT_SERVER_COOKIE_SECRET": secrets.token_hex(32),
        "OMP_NUM_THREADS": str(threads),
        # Each process's engine workers get their share of the cores (see ui/serve.py).
        "PRUNELAB_WORKERS": str(max(1, (os.cpu_count() or 1) // processes)),
        "MKL_NUM_THREADS": str(threads),
    }


def _start_backend(
    i: int,
    app: str | Path,
    cwd: str | Path,
    env: dict[str, str],
    log_dir: str | Path | None,
    stack: contextlib.ExitStack,
) -> Backend:
    """Start app process ``i`` on a free port; ``stack`` stops it and closes its log."""
    backend_port = free_port()
    log_path = Path(log_dir) / f"{backend_name(i)}.log" if log_dir is not None else None
    out = stack.enter_context(open(log_path, "wb")) if log_path else None  # noqa: SIM115 - the stack closes it
    # The project's app through its launcher (imports, engine workers and warm-up first);
    # any other script (the proxy tests use one) as it is.
    is_project_app = Path(cwd, app).resolve() == Path(__file__).resolve().parents[1] / "app.py"
    launch = ["-m", "ui.serve"] if is_project_app else ["-m", "streamlit", "run", str(app)]
    process = subprocess.Popen(
        [sys.executable, *launch, "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(backend_port),
         "--browser.gatherUsageStats", "false"],
        cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
    )  # fmt: skip
    stack.callback(_stop, process)
    return Backend(backend_name(i), backend_port, process, log_path)


def _prepare_nginx_dirs(run_dir: Path) -> str | None:
    """nginx's temp directories under ``run_dir``, writable by its worker user; returns that user."""
    user = _nginx_user()
    for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (run_dir / "tmp" / sub).mkdir(parents=True)
        if user:
            os.chown(run_dir / "tmp" / sub, pwd.getpwnam("nobody").pw_uid, -1)
    if user:
        run_dir.chmod(0o711)
        (run_dir / "tmp").chmod(0o711)
    return user


@contextlib.contextmanager
def workshop(
    processes: int = 2,
    port: int = 8501,
    host: str = "127.0.0.1",
    app: str | Path = "app.py",
    cache_dir: str | Path | None = None,
    log_dir: str | Path | None = None,
    threads_per_process: int | None = None,
    cwd: str | Path = ROOT,
    timeout_s: float = 120,
) -> Iterator[Workshop]:
    """Start the app processes and nginx; yield the running ``Workshop``; stop them all on exit.

    ``cache_dir`` defaults to a fresh private directory removed afterwards. With ``log_dir`` each
    process's output goes to ``<log_dir>/<name>.log`` (tests read the ``prunelab: computed``
    lines there); otherwise it goes to this terminal. Torch threads are split between processes.
    """
    nginx_binary = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx_binary is None:
        raise RuntimeError("nginx is not installed: apt-get install -y nginx")
    if processes < 1:
        raise ValueError(f"processes must be at least 1, got {processes}")
    threads = threads_per_process or max(1, (os.cpu_count() or 1) // processes)
    with contextlib.ExitStack() as stack:
        run_dir = Path(tempfile.mkdtemp(prefix="prunelab-workshop-"))
        stack.callback(shutil.rmtree, run_dir, True)
        if cache_dir is None:
            cache_dir = Path(tempfile.mkdtemp(prefix="prunelab-cache-"))
            stack.callback(shutil.rmtree, cache_dir, True)
        cache_dir = Path(cache_dir)
        cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        env = _backend_env(cache_dir, processes, threads)
        backends = [_start_backend(i, app, cwd, env, log_dir, stack) for i in range(processes)]
        for backend in backends:
            _wait_healthy(backend.url, [backend.process], f"app process {backend.name}", timeout_s)

        user = _prepare_nginx_dirs(run_dir)
        config = run_dir / "nginx.conf"
        config.write_text(render_config([b.port for b in backends], f"{host}:{port}", run_dir, user=user))
        nginx_log = stack.enter_context(open(run_dir / "nginx.log", "wb")) if log_dir is not None else None
        nginx = subprocess.Popen(
            [nginx_binary, "-p", str(run_dir), "-c", str(config), "-e", "stderr"], stderr=nginx_log, stdout=nginx_log
        )
        stack.callback(_stop, nginx)
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '') else host}:{port}"
        try:
            _wait_healthy(url, [nginx], "nginx", 30)
        except RuntimeError as exc:
            detail = (run_dir / "nginx.log").read_text() if log_dir is not None else ""
            raise RuntimeError(f"{exc}\n{detail}") from None
        yield Workshop(url, backends, cache_dir, run_dir, nginx)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--processes", type=int, default=2, help="app processes (default 2)")
    parser.add_argument("--port", type=int, default=8501, help="the port people open (default 8501)")
    parser.add_argument(
        "--host", default="127.0.0.1", help="address nginx listens on (default 127.0.0.1; 0.0.0.0 for a room)"
    )
    parser.add_argument(
        "--cache-dir",
        default=os.environ.get("PRUNELAB_CACHE_DIR") or None,
        help="shared results directory, kept afterwards (default: $PRUNELAB_CACHE_DIR, else a temporary one)",
    )
    parser.add_argument("--app", default="app.py")
    args = parser.parse_args(argv)

    def terminate(signum, frame):  # so `kill PID` cleans up like Ctrl-C
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    try:
        with workshop(args.processes, args.port, args.host, args.app, args.cache_dir) as running:
            ports = ", ".join(str(b.port) for b in running.backends)
            print(
                f"PruneLab workshop: open {running.url}\n"
                f"  {len(running.backends)} app processes on 127.0.0.1 ports {ports}; "
                f"shared cache {running.cache_dir}\n"
                "  Ctrl-C stops everything.",
                flush=True,
            )
            while all(p.poll() is None for p in [running.nginx, *(b.process for b in running.backends)]):
                time.sleep(0.5)
            print("a process exited; stopping the workshop", file=sys.stderr)
            return 1
    except KeyboardInterrupt:
        print("\nstopped", file=sys.stderr)
        return 0
    except RuntimeError as exc:
        print(f"run_workshop: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
