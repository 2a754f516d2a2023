"""A real OAuth2 authorization server and protected receiver on loopback, for the receiver auth tests.

django-oauth-toolkit in a project of its own (:mod:`tests.oauth_server.settings`), run as a
subprocess (:mod:`tests.oauth_server.serve`) on a free loopback port with its own SQLite
database: a confidential client credentials application, the token endpoint ``/o/token/``,
a webhook receiver ``/hook`` that accepts only the server's valid access tokens (401 otherwise),
``/stats`` (token requests and webhooks received) and ``/revoke`` (revokes every access token).
:class:`OAuthServer` starts and stops it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
READY_TIMEOUT = 60.0


class OAuthServer:
    """The authorization server subprocess; ``client_id`` and ``client_secret`` are its application's."""

    def __init__(self, *, token_seconds: int = 3600, jwt_public_key: str = "", client_secret: str = "") -> None:
        self.client_id = "webhooks-sender"
        self.client_secret = client_secret or "cs-" + os.urandom(16).hex()
        self.token_seconds = token_seconds
        self.jwt_public_key = jwt_public_key
        self.directory = Path(tempfile.mkdtemp(prefix="dwh-oauth-"))
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> OAuthServer:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "tests.oauth_server.settings",
            "OAUTH_SERVER_DB": str(self.directory / "oauth.sqlite3"),
            "OAUTH_CLIENT_ID": self.client_id,
            "OAUTH_CLIENT_SECRET": self.client_secret,
            "OAUTH_TOKEN_SECONDS": str(self.token_seconds),
            "OAUTH_JWT_PUBLIC_KEY": self.jwt_public_key,
            "PYTHONUNBUFFERED": "1",
        }
        log = (self.directory / "server.log").open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.oauth_server.serve"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()  # blocks until the server listens (or exits)
        if not line.startswith("listening "):
            self.stop()
            raise RuntimeError(f"the OAuth server did not start:\n{self.log()}")
        self.port = int(line.split()[1])
        return self

    def log(self) -> str:
        return (self.directory / "server.log").read_text(errors="replace")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    @property
    def token_url(self) -> str:
        return self.url("/o/token/")

    def _call(self, path: str, method: str = "GET") -> dict:
        request = urllib.request.Request(self.url(path), method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback test server
            return json.loads(response.read())

    def stats(self) -> dict:
        """``token_requests``, ``tokens_issued``, ``hooks`` (accepted webhooks: body, token) and ``refused``."""
        return self._call("/stats")

    def revoke_all(self) -> int:
        return self._call("/revoke", "POST")["revoked"]
