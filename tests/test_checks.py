from __future__ import annotations

import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.checks import Error, Warning
from django.core.checks.registry import registry
from django.core.management import call_command
from django.test import override_settings

from django_webhooks.crypto import encrypt_secret
from django_webhooks.delivery.targets import validate_target_url
from django_webhooks.exceptions import WebhooksConfigurationError

GOOD_CLUSTER = {
    "name": "webhooks",
    "orm": "default",
    "workers": 1,
    "timeout": 90,
    "retry": 120,
    "max_attempts": 1,
    "ack_failures": True,
    "save_limit": -1,
}


def run_our_checks() -> list:
    """Messages of the checks django_webhooks registered (Django's own may need the database)."""
    checks = [check for check in registry.get_checks() if check.__module__ == "django_webhooks.checks"]
    assert len(checks) >= 8
    return [message for check in checks for message in check(app_configs=None, databases=None)]


def webhook_messages(**webhooks) -> list:
    """Our check messages for DJANGO_WEBHOOKS = ``webhooks`` (with a well-configured cluster)."""
    with override_settings(DJANGO_WEBHOOKS=webhooks, Q_CLUSTER=GOOD_CLUSTER, DEBUG=True):
        return run_our_checks()


def ids(messages) -> set[str]:
    return {m.id.removeprefix("django_webhooks.") for m in messages}


def cluster_messages(cluster=None, debug=False, **overrides) -> list:
    with override_settings(Q_CLUSTER=cluster, DEBUG=debug, **overrides):
        return run_our_checks()


def test_valid_settings_have_no_messages():
    assert webhook_messages() == []
    assert webhook_messages(**settings.DJANGO_WEBHOOKS) == []


def test_every_message_has_a_hint():
    messages = webhook_messages(TIMEOUT=-1, RETRY_SCHEDULE=[], BINDINGS=[{}], ALLOWED_TARGETS=["10.0.0.1/8"])
    assert messages and all(m.hint for m in messages)


def test_e001_unknown_key():
    messages = webhook_messages(TIMEOUTT=5)
    assert ids(messages) == {"E001"}
    assert "TIMEOUTT" in messages[0].msg and "TIMEOUT" in messages[0].hint


def test_e001_not_a_dict():
    with override_settings(DJANGO_WEBHOOKS=["TIMEOUT"]):
        messages = run_our_checks()
    assert ids(messages) == {"E001"}
    assert isinstance(messages[0], Error)


@pytest.mark.parametrize(
    "key,value",
    [
        ("TIMEOUT", 0),
        ("TIMEOUT", "15"),
        ("MAX_RESPONSE_BYTES", 0),
        ("MAX_RESPONSE_HEADERS", 0),
        ("MAX_RESPONSE_HEADER_BYTES", 16.5),
        ("CLAIM_BATCH_SIZE", 2.5),
        ("RETENTION_DAYS", True),
        ("LEASE_SECONDS", -1),
    ],
)
def test_e002_number_out_of_range(key, value):
    messages = webhook_messages(**{key: value})
    assert "E002" in ids(messages)
    assert any(key in m.msg for m in messages)


def test_e003_connect_timeout_above_total():
    assert ids(webhook_messages(CONNECT_TIMEOUT=20, TIMEOUT=10)) == {"E003"}
    assert webhook_messages(CONNECT_TIMEOUT=10, TIMEOUT=10) == []


def test_e015_lease_not_above_the_request_timeout():
    assert ids(webhook_messages(LEASE_SECONDS=15, TIMEOUT=15)) == {"E015"}
    assert webhook_messages(LEASE_SECONDS=16, TIMEOUT=15) == []


@pytest.mark.parametrize("schedule", [[], [5, 0], "5,10", [5, "60"], None])
def test_e004_retry_schedule(schedule):
    assert ids(webhook_messages(RETRY_SCHEDULE=schedule)) == {"E004"}


@pytest.mark.parametrize("jitter", [1, -0.1, "0.2"])
def test_e005_retry_jitter(jitter):
    assert ids(webhook_messages(RETRY_JITTER=jitter)) == {"E005"}
    assert webhook_messages(RETRY_JITTER=0) == []


def test_e006_schema_validation_mode():
    assert ids(webhook_messages(SCHEMA_VALIDATION="warn")) == {"E006"}
    assert webhook_messages(SCHEMA_VALIDATION="record") == []


def test_e007_dotted_path_not_importable():
    messages = webhook_messages(RETRY_POLICY="django_webhooks.retry.NoSuchPolicy", OWNER_RESOLVER="nope.resolver")
    assert ids(messages) == {"E007"}
    assert {"RETRY_POLICY", "OWNER_RESOLVER"} <= {word.strip('"[]') for m in messages for word in m.msg.split('"')}


def test_e008_owner_model_not_installed():
    assert ids(webhook_messages(OWNER_MODEL="teams.Team")) == {"E008"}
    assert ids(webhook_messages(OWNER_MODEL="not-a-label")) == {"E008"}
    assert webhook_messages(OWNER_MODEL="testapp.Customer") == []


def test_e009_event_type_name_and_shape():
    assert ids(webhook_messages(EVENT_TYPES={"order created": {}})) == {"E009"}
    assert ids(webhook_messages(EVENT_TYPES={"order.created": "An order"})) == {"E009"}
    assert ids(webhook_messages(EVENT_TYPES={"order.created": {"descripton": "typo"}})) == {"E009"}
    assert ids(webhook_messages(EVENT_TYPES=["order.created"])) == {"E009"}


def test_e010_invalid_json_schema():
    messages = webhook_messages(EVENT_TYPES={"order.created": {"schema": {"type": "objekt"}}})
    assert ids(messages) == {"E010"}
    assert "order.created" in messages[0].msg
    assert webhook_messages(EVENT_TYPES={"order.created": {"schema": {"type": "object", "required": ["id"]}}}) == []


def test_e011_bindings():
    declared = {"order.created": {}}
    good = {"model": "testapp.Order", "on": ["create"], "event_type": "order.created"}
    assert webhook_messages(EVENT_TYPES=declared, BINDINGS=[good]) == []
    for bad in [
        {**good, "model": "testapp.Basket"},
        {**good, "on": ["created"]},
        {**good, "on": []},
        {**good, "event_type": "order.paid"},
        {**good, "owner_field": "customer.user"},
        {**good, "owner": "customer"},  # a Customer, not a User (OWNER_MODEL)
        {**good, "fields": ["nope"], "on": ["update"]},
        {**good, "payload": "no.such.builder"},
        "testapp.Order",
    ]:
        assert ids(webhook_messages(EVENT_TYPES=declared, BINDINGS=[bad])) == {"E011"}, bad
    assert ids(webhook_messages(BINDINGS={"model": "testapp.Order"})) == {"E011"}
    unhashable = webhook_messages(EVENT_TYPES=declared, BINDINGS=[{**good, "event_type": ["order.paid"]}])
    assert ids(unhashable) == {"E011"} and any("is not declared" in m.msg for m in unhashable)


def test_e009_e010_give_the_catalog_messages():
    [name] = webhook_messages(EVENT_TYPES={"order created": {}})
    assert "'order created' is not a valid event type" in name.msg
    [schema] = webhook_messages(EVENT_TYPES={"order.created": {"schema": 5}})
    assert "Not a valid JSON Schema: a schema is an object" in schema.msg


def test_e012_encryption_keys():
    assert ids(webhook_messages(ENCRYPTION_KEYS="one-key")) == {"E012"}
    assert ids(webhook_messages(ENCRYPTION_KEYS=["", "other"])) == {"E012"}
    assert webhook_messages(ENCRYPTION_KEYS=["new-key", "old-key"]) == []


def test_e013_allowed_targets():
    assert webhook_messages(ALLOWED_TARGETS=["10.1.0.0/16", "fd00::/8", "hooks.internal", "192.168.1.7"]) == []
    for bad in ["10.1.2.3/16", "300.1.0.0/16", "hooks internal", "https://hooks.internal/", 10]:
        assert ids(webhook_messages(ALLOWED_TARGETS=[bad])) == {"E013"}, bad
    assert ids(webhook_messages(ALLOWED_TARGETS="10.0.0.0/8")) == {"E013"}


def test_e013_accepts_what_delivery_accepts():
    assert webhook_messages(ALLOWED_TARGETS=["*.corp.example", "hooks.internal.", "HOOKS.Internal"]) == []
    for bad in ["hooks.internal\n", "0x7f.1", "*", "*.", "a..b"]:
        assert ids(webhook_messages(ALLOWED_TARGETS=[bad])) == {"E013"}, bad


def test_setting_errors_say_what_run_time_says():
    for key, value, run in [
        ("ALLOWED_TARGETS", ["10.1.2.3/16"], lambda: validate_target_url("https://10.1.2.3/")),
        ("ENCRYPTION_KEYS", ["key", ""], lambda: encrypt_secret("whsec_x")),
    ]:
        [message] = webhook_messages(**{key: value})
        with override_settings(DJANGO_WEBHOOKS={key: value}), pytest.raises(WebhooksConfigurationError) as info:
            run()
        assert str(info.value) == message.msg, key


def test_e013_allowed_ports():
    assert webhook_messages(ALLOWED_PORTS=None) == []
    assert webhook_messages(ALLOWED_PORTS=[443, 80, 8443]) == []
    for bad in [443, "443", [0], [65536], ["443"], [True], [443.0]]:
        assert ids(webhook_messages(ALLOWED_PORTS=bad)) == {"E013"}, bad


def test_e014_flags_and_text():
    assert ids(webhook_messages(ALLOW_LOOPBACK="yes")) == {"E014"}
    assert ids(webhook_messages(REQUIRE_ENDPOINT_VERIFICATION="yes")) == {"E014"}
    assert ids(webhook_messages(REQUIRE_HTTPS=1)) == {"E014"}
    assert ids(webhook_messages(USER_AGENT=None)) == {"E014"}
    assert ids(webhook_messages(QUEUE=3)) == {"E014"}
    assert ids(webhook_messages(API_THROTTLE_RATES="600/min")) == {"E014"}


def test_w001_plain_http_outside_debug():
    messages = cluster_messages(GOOD_CLUSTER, DJANGO_WEBHOOKS={"REQUIRE_HTTPS": False})
    assert ids(messages) == {"W001"}
    assert isinstance(messages[0], Warning)
    assert cluster_messages(GOOD_CLUSTER, debug=True, DJANGO_WEBHOOKS={"REQUIRE_HTTPS": False}) == []
    assert cluster_messages(GOOD_CLUSTER, DJANGO_WEBHOOKS={}) == []


def test_w002_loopback_outside_debug():
    assert ids(cluster_messages(GOOD_CLUSTER, DJANGO_WEBHOOKS={"ALLOW_LOOPBACK": True})) == {"W002"}
    assert cluster_messages(GOOD_CLUSTER, debug=True, DJANGO_WEBHOOKS={"ALLOW_LOOPBACK": True}) == []


def test_w003_retry_not_above_timeout():
    assert ids(cluster_messages({**GOOD_CLUSTER, "timeout": 120, "retry": 120}, DJANGO_WEBHOOKS={})) == {"W003"}
    without_timeout = {key: value for key, value in GOOD_CLUSTER.items() if key != "timeout"}
    assert ids(cluster_messages({**without_timeout, "retry": 30}, DJANGO_WEBHOOKS={})) == {"W003"}
    assert cluster_messages({**without_timeout, "retry": 60}, DJANGO_WEBHOOKS={}) == []


def test_w004_timeout_shorter_than_a_task():
    messages = cluster_messages({**GOOD_CLUSTER, "timeout": 40, "retry": 60}, DJANGO_WEBHOOKS={})
    assert ids(messages) == {"W004"}
    assert "45" in messages[0].msg
    relaxed = {"TASK_TIME_BUDGET": 20, "TIMEOUT": 10}
    assert cluster_messages({**GOOD_CLUSTER, "timeout": 40, "retry": 60}, DJANGO_WEBHOOKS=relaxed) == []


@pytest.mark.filterwarnings("ignore:Overriding setting DATABASES")
def test_w005_sqlite_without_wal_and_several_workers():
    sqlite = {**settings.DATABASES["default"], "ENGINE": "django.db.backends.sqlite3"}
    no_wal = {"default": {**sqlite, "OPTIONS": {}}}
    wal = {"default": {**sqlite, "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;"}}}
    several = {**GOOD_CLUSTER, "workers": 4}
    assert ids(cluster_messages(several, DJANGO_WEBHOOKS={}, DATABASES=no_wal)) == {"W005"}
    assert cluster_messages(several, DJANGO_WEBHOOKS={}, DATABASES=wal) == []
    assert cluster_messages(GOOD_CLUSTER, DJANGO_WEBHOOKS={}, DATABASES=no_wal) == []


def test_w006_results_saved():
    assert ids(cluster_messages({**GOOD_CLUSTER, "save_limit": 250}, DJANGO_WEBHOOKS={})) == {"W006"}
    default_limit = {key: value for key, value in GOOD_CLUSTER.items() if key != "save_limit"}
    assert ids(cluster_messages(default_limit, DJANGO_WEBHOOKS={})) == {"W006"}


def test_w007_failed_tasks_handed_out_again():
    assert ids(cluster_messages({**GOOD_CLUSTER, "max_attempts": 0}, DJANGO_WEBHOOKS={})) == {"W007"}
    assert ids(cluster_messages({**GOOD_CLUSTER, "ack_failures": False}, DJANGO_WEBHOOKS={})) == {"W007"}


def test_w008_django_q_not_installed():
    apps_without_q = [app for app in settings.INSTALLED_APPS if app != "django_q"]
    with override_settings(INSTALLED_APPS=apps_without_q, DEBUG=True):
        from django_webhooks.checks import check_task_queue

        messages = check_task_queue(None)
    assert ids(messages) == {"W008"}


def test_w009_no_q_cluster():
    messages = cluster_messages(None, debug=True, DJANGO_WEBHOOKS={})
    assert ids(messages) == {"W009"}


@pytest.mark.django_db
def test_check_command_on_test_settings():
    stderr = io.StringIO()
    call_command("check", stdout=io.StringIO(), stderr=stderr)
    assert "django_webhooks.E" not in stderr.getvalue()


SETTINGS_WITH = """
from tests.settings import *  # noqa: F403
DJANGO_WEBHOOKS = {**DJANGO_WEBHOOKS, %s}
"""


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ('"COLOUR": "red"', "django_webhooks.E001"),
        (
            '"BINDINGS": [{"model": "testapp.Order", "on": ["create"], "event_type": "order.created", "owner": "customer"}]',
            "django_webhooks.E011",
        ),
        (
            '"BINDINGS": [{"model": "testapp.Nope", "on": ["create"], "event_type": "order.created"}]',
            "django_webhooks.E011",
        ),
    ],
)
def test_manage_py_check_reports_bad_settings_without_a_traceback(tmp_path, extra, expected):
    """A real ``django.setup()``: ``ready()`` must not raise for what the checks report."""
    (tmp_path / "bad_settings.py").write_text(SETTINGS_WITH % extra)
    root = Path(__file__).resolve().parent.parent
    done = subprocess.run(
        [sys.executable, str(root / "manage.py"), "check"],
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "bad_settings", "PYTHONPATH": f"{tmp_path}:{root}"},
        cwd=root,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert expected in done.stderr
    assert "Traceback" not in done.stderr + done.stdout


# -- alerts (django_webhooks.delivery.alerts) ------------------------------------------------


@pytest.mark.parametrize("value", [-1, 2.5, "4", True])
def test_e017_alert_failing_after(value):
    messages = webhook_messages(ALERT_FAILING_AFTER=value)
    assert ids(messages) == {"E017"} and isinstance(messages[0], Error)
    assert "ALERT_FAILING_AFTER" in messages[0].msg and "None or 0" in messages[0].hint


@pytest.mark.parametrize("value", [None, 0, 1, 10])
def test_e017_accepts_none_zero_and_counts(value):
    assert webhook_messages(ALERT_FAILING_AFTER=value) == []


@pytest.mark.parametrize("value", [50, [0, 50], [50, 100], [70, 50], [50, 50], [50.5], ["50"], None])
def test_e018_alert_budget_thresholds(value):
    messages = webhook_messages(ALERT_BUDGET_THRESHOLDS=value)
    assert ids(messages) == {"E018"} and isinstance(messages[0], Error)
    assert "increasing" in messages[0].msg and "[50, 70, 90]" in messages[0].hint


def test_e018_accepts_increasing_percentages_and_none():
    assert webhook_messages(ALERT_BUDGET_THRESHOLDS=[1, 99]) == []
    assert webhook_messages(ALERT_BUDGET_THRESHOLDS=[]) == []


def test_alert_flags_are_checked_like_every_flag():
    assert ids(webhook_messages(NOTIFY_OWNER_ON_ALERT="yes")) == {"E014"}
    assert ids(webhook_messages(OPERATIONAL_EVENTS=1)) == {"E014"}


def test_w012_owner_emails_without_an_owner_address():
    messages = webhook_messages(NOTIFY_OWNER_ON_ALERT=True, OWNER_MODEL="testapp.Order")
    assert ids(messages) == {"W012"} and isinstance(messages[0], Warning)
    assert "testapp.Order" in messages[0].msg and "NOTIFY_OWNER_ON_ALERT" in messages[0].msg
    assert "email field" in messages[0].hint
    assert ids(webhook_messages(NOTIFY_OWNER_ON_DISABLE=True, OWNER_MODEL="testapp.Order")) == {"W012"}
    assert webhook_messages(OWNER_MODEL="testapp.Order") == [], "no e-mail asked for"
    assert webhook_messages(NOTIFY_OWNER_ON_ALERT=True, OWNER_MODEL="testapp.Customer") == []
    assert webhook_messages(NOTIFY_OWNER_ON_ALERT=True, NOTIFY_OWNER_ON_DISABLE=True) == [], "auth.User has one"


# -- event type versions (E021, E022, W014) ---------------------------------------------------------


def _order_v1(data):
    return {"id": data["id"], "total": data["amount"]["value"]}


def _versioned(**older) -> dict:
    """``order.created`` at version 2, with version 1 as ``older`` declares it."""
    version_1 = {"schema": {"type": "object", "required": ["total"]}, "converter": _order_v1, **older}
    return {
        "EVENT_TYPES": {
            "order.created": {
                "version": 2,
                "example": {"id": 1, "amount": {"value": "5.00"}},
                "versions": {1: version_1},
            }
        }
    }


def test_versions_declared_well_have_no_messages():
    assert webhook_messages(**_versioned()) == []
    assert webhook_messages(**_versioned(converter="tests.test_checks._order_v1")) == []


def test_e021_a_version_without_a_converter_path():
    messages = webhook_messages(**_versioned(converter=None))
    assert ids(messages) == {"E021"} and isinstance(messages[0], Error)
    assert "['versions'][1] has no converter" in messages[0].msg
    assert "converter" in messages[0].hint and "versions" in messages[0].hint
    gap = {"EVENT_TYPES": {"order.created": {"version": 3, "versions": {1: {"converter": _order_v1}}}}}
    [message] = webhook_messages(**gap)
    assert message.id == "django_webhooks.E021" and "version(s) 2 are not declared" in message.msg


@pytest.mark.parametrize(
    "declared",
    [{"version": "2"}, {"version": 2, "versions": {2: {"converter": len}}}, {"version": 2, "versions": ["v1"]}],
)
def test_e021_bad_version_declarations(declared):
    assert ids(webhook_messages(EVENT_TYPES={"order.created": declared})) == {"E021"}


def test_version_keys_are_valid_entry_keys():
    assert "E009" not in ids(webhook_messages(EVENT_TYPES={"order.created": {"version": 1, "versions": {}}}))


@pytest.mark.parametrize(
    ("converter", "problem"),
    [("nope.missing", "could not be imported"), ("django_webhooks.catalog.FIRST_VERSION", "is not callable"), (3, "")],
)
def test_e022_converters_that_do_not_import_or_are_not_callable(converter, problem):
    messages = webhook_messages(**_versioned(converter=converter))
    assert ids(messages) == {"E022"} and isinstance(messages[0], Error)
    assert "['versions'][1]['converter']" in messages[0].msg and problem in messages[0].msg
    assert "(data) -> data" in messages[0].hint


def test_w014_a_converter_that_breaks_its_version_on_the_example():
    messages = webhook_messages(**_versioned(converter=lambda data: {"id": data["id"]}))
    assert ids(messages) == {"W014"} and isinstance(messages[0], Warning)
    assert "rendered as version 1 does not match its schema: $: 'total' is a required property" in messages[0].msg
    [raised] = webhook_messages(**_versioned(converter=lambda data: data["missing"]))
    assert raised.id == "django_webhooks.W014" and "raised KeyError" in raised.msg


def test_cloudevents_source_is_a_text_setting():
    assert ids(webhook_messages(CLOUDEVENTS_SOURCE=5)) == {"E014"}
    assert webhook_messages(CLOUDEVENTS_SOURCE="https://shop.example.com/webhooks") == []


# -- the dispatcher (django_webhooks.delivery.broker) ----------------------------------------

IMMEDIATE = {"default": {"BACKEND": "django_tasks.backends.immediate.ImmediateBackend"}}


def tasks_messages(tasks, **webhooks) -> list:
    """Our check messages with ``DISPATCHER = "django_tasks"`` and ``TASKS = tasks``: the backport's
    app installed on Django 5.2, as its users have it, and the framework's backends rebuilt."""
    import django

    from django_webhooks.delivery import via_django_tasks

    framework = via_django_tasks.framework()
    __import__(f"{framework.__name__}.signals")  # the framework's receiver that rebuilds its backends
    if framework.__name__ == "django.tasks":
        tasks = {
            alias: {**spec, "BACKEND": spec["BACKEND"].replace("django_tasks.", "django.tasks.", 1)}
            for alias, spec in tasks.items()
        }
    installed = [
        *settings.INSTALLED_APPS,
        *(["django_tasks"] if django.VERSION < (6, 0) and "django_tasks" not in settings.INSTALLED_APPS else []),
    ]
    with override_settings(INSTALLED_APPS=installed, TASKS=tasks):
        return webhook_messages(**{**settings.DJANGO_WEBHOOKS, "DISPATCHER": "django_tasks", **webhooks})


def test_e019_an_unknown_dispatcher():
    messages = webhook_messages(DISPATCHER="celery")
    assert ids(messages) == {"E019"} and isinstance(messages[0], Error)
    assert "'celery'" in messages[0].msg and '"django_tasks"' in messages[0].hint


def test_a_tasks_backend_with_workers_and_our_queue_has_no_messages():
    assert tasks_messages({"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend"}}) == []
    assert tasks_messages({"default": {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": []}}) == []


def test_e019_a_queue_the_tasks_backend_does_not_have():
    backend = {"BACKEND": "django_tasks.backends.dummy.DummyBackend", "QUEUES": ["default", "mail"]}
    messages = tasks_messages({"default": backend}, QUEUE="webhooks")
    assert ids(messages) == {"E019"} and isinstance(messages[0], Error)
    assert "'webhooks'" in messages[0].msg and "default, mail" in messages[0].msg
    assert 'Add \'webhooks\' to TASKS["default"]["QUEUES"]' in messages[0].hint
    assert tasks_messages({"default": backend}, QUEUE="mail") == []


def test_e019_a_tasks_backend_that_does_not_load():
    messages = tasks_messages({"default": {"BACKEND": "nowhere.Backend"}})
    assert ids(messages) == {"E019"} and "nowhere.Backend" in messages[0].msg


def test_e020_the_immediate_backend_is_refused():
    messages = tasks_messages(IMMEDIATE)
    assert ids(messages) == {"E020"} and isinstance(messages[0], Error)
    assert "inside the request" in messages[0].msg and "db_worker" in messages[0].hint


def test_w013_django_tasks_chosen_but_not_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "django.tasks", None)  # as on Django 5.2 ...
    monkeypatch.setitem(sys.modules, "django_tasks", None)  # ... without the backport
    messages = webhook_messages(DISPATCHER="django_tasks")
    assert ids(messages) == {"W013"} and isinstance(messages[0], Warning)
    assert "no worker will deliver" in messages[0].msg and "django-webhooks[tasks]" in messages[0].hint


def test_w008_and_the_django_q2_warnings_are_not_for_the_tasks_dispatcher():
    apps_without_q = [app for app in settings.INSTALLED_APPS if app != "django_q"]
    with override_settings(INSTALLED_APPS=apps_without_q, Q_CLUSTER=None, DEBUG=True):
        from django_webhooks.checks import check_task_queue

        assert ids(check_task_queue(None)) == {"W008"}
        with override_settings(DJANGO_WEBHOOKS={"DISPATCHER": "django_tasks"}):
            assert check_task_queue(None) == []


def test_manage_py_check_refuses_the_immediate_backend_in_a_project_without_django_q():
    """A real ``django.setup()`` of the test project on Django Tasks (no django_q installed)."""
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "DWH_DISPATCHER": "django_tasks",
        "SQLITE_PATH": str(settings.DATABASES["default"]["NAME"]),
    }
    run = [sys.executable, str(root / "manage.py"), "check", "--fail-level", "ERROR"]
    good = subprocess.run(run, env=env, cwd=root, capture_output=True, text=True, timeout=120)
    assert good.returncode == 0, good.stderr
    immediate = '{"default": {"BACKEND": "%s.backends.immediate.ImmediateBackend"}}' % (
        "django.tasks" if __import__("django").VERSION >= (6, 0) else "django_tasks"
    )
    bad = subprocess.run(
        run, env={**env, "DWH_TEST_TASKS": immediate}, cwd=root, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode != 0
    assert "django_webhooks.E020" in bad.stderr and "Traceback" not in bad.stderr + bad.stdout


def test_e016_metrics_token_not_a_string():
    assert "E016" in ids(webhook_messages(METRICS_TOKEN=1234))


def test_e016_multiprocess_dir_that_is_not_a_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path / "missing"))
    assert "E016" in ids(webhook_messages())
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    assert "E016" not in ids(webhook_messages())


def test_w010_short_metrics_token():
    assert "W010" in ids(webhook_messages(METRICS_TOKEN="letmein"))
    assert "W010" not in ids(webhook_messages(METRICS_TOKEN="k" * 32))
    assert "W010" not in ids(webhook_messages(METRICS_TOKEN=""))
