from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import close_old_connections

from django_webhooks.conf import webhooks_settings
from django_webhooks.metrics.exposition import MetricsUnavailable, multiprocess_dir, render
from django_webhooks.metrics.views import token_matches


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class Command(BaseCommand):
    help = (
        "Serve the webhook metrics for Prometheus on a port (GET /metrics), for machines that run "
        "django-q2 workers and no web process: it reads the files of every process that shares "
        "PROMETHEUS_MULTIPROC_DIR on this machine. With METRICS_TOKEN set, scrapers must send it as "
        "'Authorization: Bearer <token>'."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--bind", default="127.0.0.1", help="Address to listen on (default: 127.0.0.1).")
        parser.add_argument("--port", type=int, default=9640, help="Port to listen on (default: 9640).")
        parser.add_argument(
            "--no-queue-gauges",
            action="store_true",
            help="Leave out the gauges read from the database (when a web process already exposes them).",
        )

    def handle(self, *args: Any, bind: str, port: int, no_queue_gauges: bool, **options: Any) -> None:
        if not multiprocess_dir():
            raise CommandError(
                "Set PROMETHEUS_MULTIPROC_DIR (the directory the workers write to) before starting this command."
            )
        try:
            render(None, queue_gauges=False)
        except MetricsUnavailable as exc:
            raise CommandError(str(exc))

        def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            if environ.get("PATH_INFO") not in ("/metrics", "/metrics/"):
                start_response("404 Not Found", [("Content-Type", "text/plain")])
                return [b"Not found: GET /metrics"]
            if webhooks_settings.METRICS_TOKEN and not token_matches(environ.get("HTTP_AUTHORIZATION", "")):
                start_response("403 Forbidden", [("Content-Type", "text/plain")])
                return [b"The metrics token is required."]
            close_old_connections()  # as around a Django request: this process lives for days
            try:
                body, content_type = render(environ.get("HTTP_ACCEPT"), queue_gauges=not no_queue_gauges)
            finally:
                close_old_connections()
            start_response("200 OK", [("Content-Type", content_type), ("Content-Length", str(len(body)))])
            return [body]

        server: WSGIServer = make_server(bind, port, application, handler_class=_QuietHandler)
        self.stdout.write(f"Serving webhook metrics on http://{bind}:{server.server_port}/metrics")
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.server_close()
