"""Run Debian's nginx on loopback as a receiver that is never the bottleneck."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import NamedTuple

CONFIG = """
daemon off;
worker_processes 1;
error_log {prefix}/error.log warn;
pid {prefix}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
    log_format hooks '$msec $http_webhook_id $http_user_agent';
    access_log {prefix}/access.log hooks buffer=64k flush=100ms;
    keepalive_requests 1000000;
    keepalive_timeout 120s;
    client_body_buffer_size 64k;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 "ok"; }}
    }}
}}
"""


class Request(NamedTuple):
    """One line of the receiver's log."""

    at: float
    webhook_id: str
    user_agent: str


def read_log(path: Path) -> list[Request]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        msec, webhook_id, user_agent = (line.split(" ", 2) + ["", ""])[:3]
        rows.append(Request(float(msec), webhook_id, user_agent))
    return rows


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Nginx:
    """``with Nginx() as url: ...`` serves 200 "ok" to every request at ``url``."""

    def __init__(self) -> None:
        self.binary = shutil.which("nginx") or "/usr/sbin/nginx"
        self.prefix = Path(tempfile.mkdtemp(prefix="dwh-nginx-"))
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    def __enter__(self) -> str:
        if not Path(self.binary).exists():
            raise SystemExit("nginx is not installed: apt-get install -y nginx-light")
        conf = self.prefix / "nginx.conf"
        conf.write_text(CONFIG.format(prefix=self.prefix, port=self.port))
        self.process = subprocess.Popen([self.binary, "-c", str(conf), "-p", str(self.prefix)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return f"http://127.0.0.1:{self.port}/hook"
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("nginx did not start; see " + str(self.prefix / "error.log"))

    @property
    def access_log(self) -> Path:
        return self.prefix / "access.log"

    def answered(self) -> list[Request]:
        """Every request answered so far (the log is flushed every 100 ms)."""
        return read_log(self.access_log)

    def acknowledged(self) -> list[tuple[float, str]]:
        """(time, webhook-id) of every request answered so far."""
        return [(request.at, request.webhook_id) for request in self.answered()]

    def count(self) -> int:
        if not self.access_log.exists():
            return 0
        with self.access_log.open("rb") as fh:
            return sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 20), b""))

    def reset_log(self) -> None:
        """Forget what was logged so far (nginx appends, so truncating is safe)."""
        time.sleep(0.3)  # let nginx flush its buffer first
        self.access_log.write_bytes(b"")

    def __exit__(self, *exc) -> None:
        if self.process:
            self.process.terminate()
            self.process.wait(timeout=10)
        shutil.rmtree(self.prefix, ignore_errors=True)
