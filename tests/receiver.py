"""A scriptable HTTP receiver on loopback, for delivery tests that send real requests.

with Receiver() as rx:
    rx.script = [Reply(500), Reply(200)]      # replies in order; the last one repeats
    ... deliver to rx.url("/hook") ...
    rx.wait_for(2)                            # bounded wait for two requests
    rx.requests[0].headers["webhook-id"]
    rx.answer = lambda request: Reply(200, request.body) if request.path == "/echo" else None
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


@dataclass
class Reply:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    #: Seconds to wait before answering (a hanging receiver).
    delay: float = 0.0
    #: Send the body one byte per `drip` seconds (a slow-loris receiver).
    drip: float = 0.0
    #: Stream this many bytes of body instead of `body` (a huge response).
    stream_bytes: int = 0


@dataclass
class ReceivedRequest:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128  # many lanes connect at once; the default backlog of 5 drops SYNs


class Receiver:
    """Records every request; answers from ``script`` (per path prefix in ``routes`` if set)."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.host = host
        self.script: list[Reply] = [Reply()]
        self.routes: dict[str, list[Reply]] = {}
        #: Called with each request; a Reply it returns is sent instead of the script's next one.
        self.answer: Callable[[ReceivedRequest], Reply | None] | None = None
        self.requests: list[ReceivedRequest] = []
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                receiver._handle(self)

            do_GET = do_PUT = do_POST

        family_host = self.host.strip("[]")
        if ":" in family_host:
            import socket

            class _Server6(_Server):
                address_family = socket.AF_INET6

            self._server = _Server6((family_host, 0), Handler)
        else:
            self._server = _Server((family_host, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    def url(self, path: str = "/hook") -> str:
        host = f"[{self.host.strip('[]')}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{path}"

    # -- inspection --------------------------------------------------------------------------
    def wait_for(self, count: int, timeout: float = 30.0, path: str | None = None) -> list[ReceivedRequest]:
        """Wait (bounded) until ``count`` requests arrived (optionally to ``path``); return them."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.received(path)
            if len(got) >= count:
                return got
            time.sleep(0.02)
        return self.received(path)

    def received(self, path: str | None = None) -> list[ReceivedRequest]:
        with self._lock:
            return [r for r in self.requests if path is None or r.path.startswith(path)]

    # -- serving -----------------------------------------------------------------------------
    def _next_reply(self, path: str) -> Reply:
        script = self.script
        key = ""
        for prefix, replies in self.routes.items():
            if path.startswith(prefix):
                script, key = replies, prefix
                break
        with self._lock:
            n = self._counts.get(key, 0)
            self._counts[key] = n + 1
        return script[min(n, len(script) - 1)]

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        request = ReceivedRequest(
            method=handler.command,
            path=handler.path,
            headers={k.lower(): v for k, v in handler.headers.items()},
            body=body,
            received_at=time.time(),
        )
        with self._lock:
            self.requests.append(request)
        reply = self._next_reply(handler.path)
        if self.answer is not None:
            reply = self.answer(request) or reply
        if reply.delay and self._stopping.wait(reply.delay):
            return
        try:
            handler.send_response(reply.status)
            for name, value in reply.headers.items():
                handler.send_header(name, value)
            if reply.stream_bytes:
                handler.send_header("Content-Length", str(reply.stream_bytes))
                handler.end_headers()
                chunk = b"x" * 65536
                left = reply.stream_bytes
                while left > 0 and not self._stopping.is_set():
                    handler.wfile.write(chunk[: min(left, len(chunk))])
                    left -= len(chunk)
                return
            handler.send_header("Content-Length", str(len(reply.body)))
            handler.end_headers()
            if reply.drip:
                for byte in reply.body:
                    if self._stopping.wait(reply.drip):
                        return
                    handler.wfile.write(bytes([byte]))
                    handler.wfile.flush()
            else:
                handler.wfile.write(reply.body)
        except (BrokenPipeError, ConnectionResetError):
            pass
