"""Run in a fresh virtualenv holding only the built wheel: migrate, check, one signed delivery.

Prints one line per step and exits non-zero on the first failure (tests/test_packaging.py).
"""

import http.server
import os
import sys
import threading

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "smoke_settings")

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402
from django.template.loader import get_template  # noqa: E402

import django_webhooks  # noqa: E402

if not os.path.abspath(django_webhooks.__file__).startswith(sys.prefix):
    sys.exit(f"django_webhooks imported from {django_webhooks.__file__}, not from the wheel in {sys.prefix}")
print("installed:", django_webhooks.__version__, os.path.dirname(django_webhooks.__file__))

call_command("migrate", verbosity=0)
print("migrate: ok")
call_command("check", fail_level="ERROR")
for name in (
    "django_webhooks/email/subscription_disabled.txt",
    "django_webhooks/admin/dashboard.html",
    "django_webhooks/admin/subscription_change_form.html",
):
    get_template(name)
print("templates: ok")

from django_webhooks import send_event, testing  # noqa: E402
from django_webhooks.models import Delivery, Subscription  # noqa: E402
from django_webhooks.receiving import verify  # noqa: E402
from django_webhooks.secret_store import current_secret  # noqa: E402

received = []


class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
threading.Thread(target=server.serve_forever, daemon=True).start()
subscription = Subscription.objects.create(url=f"http://127.0.0.1:{server.server_port}/hook", event_types=["ping"])
send_event("ping", {"hello": "wheel"})
testing.drain()
server.shutdown()

if len(received) != 1:
    sys.exit(f"expected 1 request at the receiver, got {len(received)}")
headers, body = received[0]
verify(headers, body, current_secret(subscription))
status = Delivery.objects.get(subscription=subscription).status
if status != "succeeded":
    sys.exit(f"the delivery is {status!r}, not 'succeeded'")
print("delivery: 1 signed request verified, delivery succeeded")
