"""``manage.py demo``: the whole webhook loop on one laptop, with no internet.

Migrates, creates a staff login, demo customers and orders, and a subscription of the demo
customer pointing at the shop's own receiver; then runs the web server and a django-q2 cluster
as child processes, places a few orders so deliveries show up, and stops both on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

if TYPE_CHECKING:
    from example_project.shop.models import Customer

ADDRESS = "127.0.0.1:8000"
STAFF_USERNAME = "admin"
STAFF_PASSWORD = "admin"
CUSTOMER_USERNAME = "demo"
CUSTOMER_PASSWORD = "demo"
RECEIVER_PATH = "/receiver/demo/"
STARTUP_WAIT_SECONDS = 60
SHUTDOWN_WAIT_SECONDS = 15
CTRL_C_GRACE_SECONDS = 3


class Command(BaseCommand):
    help = (
        "Set up and run the webhook demo: migrate, create a staff user (admin/admin), demo customers "
        "and orders and a subscription to the local receiver, then run the web server and a "
        "django-q2 worker cluster until Ctrl-C. Use --no-serve to only set up the data."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--no-serve", action="store_true", help="Set up the database and data, then exit.")
        parser.add_argument("--addrport", default=ADDRESS, help=f"Where the web server listens (default {ADDRESS}).")

    def handle(self, *args: Any, no_serve: bool, addrport: str, **options: Any) -> None:
        self.stdout.write("Migrating the database...")
        call_command("migrate", interactive=False, verbosity=0)
        call_command("webhooks_sync_event_types", verbosity=0, stdout=self.stdout)
        base_url = f"http://{addrport}"
        customer = self.create_data(base_url)
        if no_serve:
            self.stdout.write(self.style.SUCCESS("Demo data is ready (--no-serve: not starting the servers)."))
            self.print_urls(base_url)
            return
        self.serve(base_url, addrport, customer)

    def create_data(self, base_url: str) -> Customer:
        from django_webhooks import secret_store
        from django_webhooks.models import Subscription
        from example_project.shop.models import Customer, Order

        user_model = get_user_model()
        with transaction.atomic():
            staff, created = user_model.objects.get_or_create(
                username=STAFF_USERNAME, defaults={"is_staff": True, "is_superuser": True, "email": "admin@example.com"}
            )
            if created:
                staff.set_password(STAFF_PASSWORD)
                staff.save()
            customer_user, created = user_model.objects.get_or_create(
                username=CUSTOMER_USERNAME, defaults={"email": "demo@example.com"}
            )
            if created:
                customer_user.set_password(CUSTOMER_PASSWORD)
                customer_user.save()
            customer, _ = Customer.objects.get_or_create(
                user=customer_user, name="Demo Customer", defaults={"email": "demo@example.com"}
            )
            other_user, _ = user_model.objects.get_or_create(username="other-customer")
            other, _ = Customer.objects.get_or_create(user=other_user, name="Other Customer")
            if not Order.objects.exists():
                Order.objects.create(customer=customer, number="A-1001", total=Decimal("25.00"))
                Order.objects.create(customer=other, number="A-1002", total=Decimal("12.50"))
            url = base_url + RECEIVER_PATH
            subscription = Subscription.objects.filter(owner_id=str(customer_user.pk), url=url).first()
            if subscription is None:
                subscription = Subscription.objects.create(
                    owner_id=str(customer_user.pk),
                    url=url,
                    description="The demo customer's endpoint (the shop's own receiver).",
                    event_types=["order.*"],
                )
                secret_store.create_secret(subscription)
        self.stdout.write(f"Staff login: {STAFF_USERNAME} / {STAFF_PASSWORD}")
        self.stdout.write(f"Customer login (owns the subscription): {CUSTOMER_USERNAME} / {CUSTOMER_PASSWORD}")
        self.stdout.write(f"Subscription #{subscription.pk}: order.* -> {url}")
        return customer

    def print_urls(self, base_url: str) -> None:
        self.stdout.write("")
        self.stdout.write(f"  Shop admin:          {base_url}/admin/shop/order/")
        self.stdout.write(f"  Webhooks admin:      {base_url}/admin/django_webhooks/")
        self.stdout.write(f"  Received webhooks:   {base_url}/receiver/")
        self.stdout.write(f"  Customer's shop page and webhooks portal: {base_url}/shop/")
        self.stdout.write(f"  API docs (Swagger):  {base_url}/api/schema/swagger-ui/")
        self.stdout.write(f"  API root:            {base_url}/api/webhooks/subscriptions/")
        self.stdout.write(
            f"  API log-in ({CUSTOMER_USERNAME} / {CUSTOMER_PASSWORD}): "
            f"{base_url}/api-auth/login/?next=/api/schema/swagger-ui/"
        )
        self.stdout.write("")

    def serve(self, base_url: str, addrport: str, customer: Customer) -> None:
        manage_py = str(Path(settings.BASE_DIR) / "manage.py")
        children: list[subprocess.Popen] = []
        previous_handler = signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
        # Started from a script as a background job, SIGINT is ignored; Ctrl-C must still stop us.
        previous_int_handler = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.stdout.write(f"Starting the web server on {base_url} and a django-q2 cluster...")
            children.append(subprocess.Popen([sys.executable, manage_py, "runserver", addrport, "--noreload"]))
            children.append(subprocess.Popen([sys.executable, manage_py, "qcluster"]))
            if not self.wait_until_up(base_url, children):
                self.stderr.write("The web server did not start; see the messages above.")
                return
            self.place_orders(customer)
            self.stdout.write(self.style.SUCCESS("The demo is running. Press Ctrl-C to stop."))
            self.print_urls(base_url)
            self.stdout.write(
                f"Log in as {STAFF_USERNAME} / {STAFF_PASSWORD}; change an order and watch {base_url}/receiver/"
            )
            while all(child.poll() is None for child in children):
                time.sleep(0.5)
            self.stderr.write("A child process exited; stopping the demo.")
        except KeyboardInterrupt:
            self.stdout.write("\nStopping...")
        finally:
            _stop(children)
            signal.signal(signal.SIGTERM, previous_handler)
            signal.signal(signal.SIGINT, previous_int_handler)
            self.stdout.write("Stopped.")

    def wait_until_up(self, base_url: str, children: list[subprocess.Popen]) -> bool:
        deadline = time.monotonic() + STARTUP_WAIT_SECONDS
        while time.monotonic() < deadline:
            if any(child.poll() is not None for child in children):
                return False
            try:
                with urllib.request.urlopen(base_url + "/receiver/", timeout=2):  # noqa: S310 (fixed loopback URL)
                    return True
            except (urllib.error.URLError, OSError):
                time.sleep(0.3)
        return False

    def place_orders(self, customer: Customer) -> None:
        from example_project.shop.models import Order

        next_number = 2001 + Order.objects.count()
        order = Order.objects.create(customer=customer, number=f"A-{next_number}", total=Decimal("42.00"))
        order.status = Order.Status.PAID
        order.save()
        Order.objects.create(customer=customer, number=f"A-{next_number + 1}", total=Decimal("9.90"))
        self.stdout.write("Placed two orders and paid one: order.created / order.updated webhooks are on their way.")


def _raise_keyboard_interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def _stop(children: list[subprocess.Popen]) -> None:
    """Stop the children: Ctrl-C in a terminal reaches them too, so give them a moment; then
    interrupt, terminate and finally kill any that linger."""
    deadline = time.monotonic() + CTRL_C_GRACE_SECONDS
    while time.monotonic() < deadline and any(child.poll() is None for child in children):
        time.sleep(0.1)
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGINT)
    for escalate in (subprocess.Popen.terminate, subprocess.Popen.kill):
        deadline = time.monotonic() + SHUTDOWN_WAIT_SECONDS
        for child in children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                escalate(child)
    for child in children:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=SHUTDOWN_WAIT_SECONDS)
