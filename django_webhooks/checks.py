"""System checks, ids ``django_webhooks.E0xx`` (errors) and ``W0xx`` (warnings).

Every check reads the settings when it runs (never at import), so ``override_settings`` works.
Checks other than E001 read the raw ``DJANGO_WEBHOOKS`` dict merged over the defaults, so one
bad key does not hide the other problems.

Errors: E001 unknown keys or not a dict, E002 a number of the wrong type or out of range,
E003 ``CONNECT_TIMEOUT`` above ``TIMEOUT``, E004 ``RETRY_SCHEDULE``, E005 ``RETRY_JITTER``,
E006 ``SCHEMA_VALIDATION``, E007 a dotted path that does not import, E008 ``OWNER_MODEL``,
E009 an invalid ``EVENT_TYPES`` entry, E010 an invalid JSON Schema in ``EVENT_TYPES``,
E011 a malformed ``BINDINGS`` entry, E012 ``ENCRYPTION_KEYS``, E013 ``ALLOWED_TARGETS`` or ``ALLOWED_PORTS``,
E014 a flag or text setting of the wrong type, E015 ``LEASE_SECONDS`` not above ``TIMEOUT``,
E016 the metrics setup (``METRICS_TOKEN`` not a string, ``PROMETHEUS_MULTIPROC_DIR`` not writable),
E017 ``ALERT_FAILING_AFTER``, E018 ``ALERT_BUDGET_THRESHOLDS``, E019 a ``DISPATCHER`` that cannot take
our tasks (an unknown name, a Tasks backend that does not load or lacks ``QUEUE``), E020 the
Immediate Tasks backend (it would deliver inside the request that saved the change), E021 an
event type's versions (one without a converter path down from the current one), E022 a version
converter that does not import or is not callable.

Warnings: W001 plain-http targets allowed outside DEBUG, W002 loopback targets allowed outside
DEBUG, W003 django-q2 ``retry`` not above the task run time, W004 django-q2 ``timeout`` shorter
than our tasks, W005 SQLite without WAL under several workers, W006 django-q2 saves every task
result, W007 django-q2 retries failed tasks itself, W008 ``django_q`` not installed,
W009 no ``Q_CLUSTER``, W010 a metrics token that is short or serves nothing (no prometheus_client), W012 owner e-mails asked for but ``OWNER_MODEL`` has no ``email``,
W013 ``DISPATCHER`` is ``"django_tasks"`` but Django Tasks is not available, W014 a version converter that fails on the current example or breaks its version's schema,
W015 a subscription's TLS client certificate expired or expiring within 14 days (a database check: ``check --database default``). W003-W009 are
django-q2's, checked only when it is the dispatcher.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection, Iterable
from typing import Any

import django
from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured, ValidationError
from django.utils.module_loading import import_string

from .capture.bindings import BindingRegistry
from .catalog import (
    DECLARATION_KEYS,
    converter_problems,
    example_conversion_problems,
    json_schema_problem,
    validate_event_type_name,
    version_problems,
)
from .conf import DEFAULTS, IMPORT_STRINGS, SETTING_NAME, webhooks_settings
from .crypto import encryption_keys_problem
from .delivery import via_django_tasks
from .delivery.broker import DISPATCHERS
from .delivery.targets import allowed_target_problems

SCHEMA_VALIDATION_MODES = {"raise", "record"}

#: (setting, minimum, whether the minimum itself is allowed, whether it must be an int)
NUMERIC_SETTINGS = [
    ("MAX_PAYLOAD_BYTES", 1, True, True),
    ("SECRET_ROTATION_OVERLAP", 0, True, False),
    ("CONNECT_TIMEOUT", 0, False, False),
    ("TIMEOUT", 0, False, False),
    ("MAX_RESPONSE_BYTES", 1, True, True),
    ("MAX_RESPONSE_HEADERS", 1, True, True),
    ("MAX_RESPONSE_HEADER_BYTES", 1, True, True),
    ("MAX_CUSTOM_HEADERS", 0, True, True),
    ("MAX_RETRY_AFTER", 0, True, False),
    ("LEASE_SECONDS", 0, False, False),
    ("CLAIM_BATCH_SIZE", 1, True, True),
    ("SEND_CONCURRENCY", 1, True, True),
    ("TASK_TIME_BUDGET", 0, False, False),
    ("TASKS_WORKERS", 1, True, True),
    ("MAX_IN_FLIGHT_PER_SUBSCRIPTION", 1, True, True),
    ("CIRCUIT_BREAKER_THRESHOLD", 1, True, True),
    ("CIRCUIT_BREAKER_COOLDOWN", 0, False, False),
    ("CIRCUIT_BREAKER_MAX_COOLDOWN", 0, False, False),
    ("AUTO_DISABLE_AFTER", 0, False, False),
    ("RETENTION_DAYS", 1, True, True),
    ("PRUNE_BATCH_SIZE", 1, True, True),
]
BOOLEAN_SETTINGS = [
    "ALLOW_LOOPBACK",
    "NOTIFY_OWNER_ON_DISABLE",
    "NOTIFY_OWNER_ON_ALERT",
    "OPERATIONAL_EVENTS",
    "API_STAFF_SEES_ALL",
    "REQUIRE_ENDPOINT_VERIFICATION",
]
TEXT_SETTINGS = ["USER_AGENT", "THIN_PAYLOAD_URL", "CLOUDEVENTS_SOURCE"]


def _id(code: str) -> str:
    return f"django_webhooks.{code}"


def _name(key: str) -> str:
    return f'{SETTING_NAME}["{key}"]'


def _configured() -> dict[str, Any] | None:
    """The user's settings over the defaults, or None when ``DJANGO_WEBHOOKS`` is not a dict."""
    try:
        return {**DEFAULTS, **webhooks_settings.user_settings()}
    except ImproperlyConfigured:
        return None


def _is_number(value: Any, integer: bool = False) -> bool:
    if isinstance(value, bool):
        return False
    return isinstance(value, int) if integer else isinstance(value, int | float)


def _one_of(conf: dict[str, Any], key: str, choices: Collection[Any], hint: str, code: str) -> list[CheckMessage]:
    """An error when setting ``key`` is not one of ``choices``."""
    value = conf[key]
    if value in choices:
        return []
    return [Error(f"{_name(key)} is {value!r}.", hint=hint, id=_id(code))]


def _q_cluster() -> dict[str, Any] | None:
    value = getattr(settings, "Q_CLUSTER", None)
    return value if isinstance(value, dict) else None


@register()
def check_settings_keys(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    try:
        unknown = webhooks_settings.unknown_keys()
    except ImproperlyConfigured as exc:
        return [Error(str(exc), hint=f"Set {SETTING_NAME} to a dict.", id=_id("E001"))]
    if unknown:
        return [
            Error(
                f"Unknown key(s) in {SETTING_NAME}: {', '.join(unknown)}.",
                hint=f"Remove or correct them; valid keys are {', '.join(sorted(DEFAULTS))}.",
                id=_id("E001"),
            )
        ]
    return []


@register()
def check_setting_values(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """Types and ranges of the plain-value settings (E002-E006, E012-E014)."""
    conf = _configured()
    if conf is None:
        return []
    errors: list[CheckMessage] = []
    for key, minimum, inclusive, integer in NUMERIC_SETTINGS:
        value = conf[key]
        in_range = _is_number(value, integer) and (value >= minimum if inclusive else value > minimum)
        if not in_range:
            kind = "an integer" if integer else "a number"
            bound = f">= {minimum}" if inclusive else f"> {minimum}"
            errors.append(
                Error(
                    f"{_name(key)} is {value!r}; it must be {kind} {bound}.",
                    hint=f"Set {_name(key)} to {kind} {bound} or remove it to use the default {DEFAULTS[key]!r}.",
                    id=_id("E002"),
                )
            )
    connect, total = conf["CONNECT_TIMEOUT"], conf["TIMEOUT"]
    if _is_number(connect) and _is_number(total) and connect > total:
        errors.append(
            Error(
                f"{_name('CONNECT_TIMEOUT')} ({connect}) is longer than {_name('TIMEOUT')} ({total}).",
                hint="The connect timeout is part of the total request time: make it at most TIMEOUT.",
                id=_id("E003"),
            )
        )
    lease = conf["LEASE_SECONDS"]
    if _is_number(lease) and _is_number(total) and lease <= total:
        errors.append(
            Error(
                f"{_name('LEASE_SECONDS')} ({lease}) is not longer than {_name('TIMEOUT')} ({total}).",
                hint="A claim must outlast the request it covers: make LEASE_SECONDS well above TIMEOUT "
                "(a working lane renews its lease; the defaults are 15 s and 20 s).",
                id=_id("E015"),
            )
        )
    schedule = conf["RETRY_SCHEDULE"]
    if (
        not isinstance(schedule, list | tuple)
        or not schedule
        or not all(_is_number(delay) and delay > 0 for delay in schedule)
    ):
        errors.append(
            Error(
                f"{_name('RETRY_SCHEDULE')} is {schedule!r}; it must be a non-empty list of positive seconds.",
                hint=f"Use a list such as {DEFAULTS['RETRY_SCHEDULE']!r} (one delay per retry).",
                id=_id("E004"),
            )
        )
    jitter = conf["RETRY_JITTER"]
    if not _is_number(jitter) or not 0 <= jitter < 1:
        errors.append(
            Error(
                f"{_name('RETRY_JITTER')} is {jitter!r}; it must be a number from 0 up to (not including) 1.",
                hint="It is the fraction by which each retry delay is randomly spread; 0.2 means +/-20%.",
                id=_id("E005"),
            )
        )
    errors += _one_of(
        conf,
        "SCHEMA_VALIDATION",
        SCHEMA_VALIDATION_MODES,
        'Use "raise" (send_event raises InvalidPayload) or "record" (the event is stored with its errors and not sent).',
        "E006",
    )
    keys_problem = encryption_keys_problem(conf["ENCRYPTION_KEYS"])
    if keys_problem:
        errors.append(
            Error(
                keys_problem,
                hint="Generate a key with `python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'` and list it; an empty list derives keys from SECRET_KEY.",
                id=_id("E012"),
            )
        )
    errors.extend(_allowed_target_errors(conf["ALLOWED_TARGETS"]))
    errors.extend(_allowed_port_errors(conf["ALLOWED_PORTS"]))
    errors.extend(_type_errors(conf))
    return errors


def _allowed_port_errors(ports: Any) -> list[CheckMessage]:
    if ports is None or (
        isinstance(ports, list | tuple) and all(_is_number(port, integer=True) and 1 <= port <= 65535 for port in ports)
    ):
        return []
    return [
        Error(
            f"{_name('ALLOWED_PORTS')} is {ports!r}; it must be None (any port) or a list of port numbers.",
            hint="Use e.g. [443, 80, 8443], or None to allow every port.",
            id=_id("E013"),
        )
    ]


def _allowed_target_errors(targets: Any) -> list[CheckMessage]:
    hint = (
        'List CIDRs ("10.1.0.0/16", "fd00::/8"; without host bits set: 10.1.0.0/16, not 10.1.2.3/16), '
        'addresses or host names ("hooks.internal", "*.corp.example").'
    )
    return [Error(problem, hint=hint, id=_id("E013")) for problem in allowed_target_problems(targets)]


def _type_errors(conf: dict[str, Any]) -> list[CheckMessage]:
    errors: list[CheckMessage] = []
    for key in BOOLEAN_SETTINGS:
        if not isinstance(conf[key], bool):
            errors.append(
                Error(
                    f"{_name(key)} is {conf[key]!r}; it must be True or False.",
                    hint=f"Set {_name(key)} to a bool.",
                    id=_id("E014"),
                )
            )
    if conf["REQUIRE_HTTPS"] is not None and not isinstance(conf["REQUIRE_HTTPS"], bool):
        errors.append(
            Error(
                f"{_name('REQUIRE_HTTPS')} is {conf['REQUIRE_HTTPS']!r}.",
                hint="Use True, False, or None (require https whenever DEBUG is off).",
                id=_id("E014"),
            )
        )
    for key in TEXT_SETTINGS:
        if not isinstance(conf[key], str):
            errors.append(
                Error(f"{_name(key)} must be a string.", hint=f"Set {_name(key)} to a string.", id=_id("E014"))
            )
    if conf["QUEUE"] is not None and not isinstance(conf["QUEUE"], str):
        errors.append(
            Error(
                f"{_name('QUEUE')} must be None or the name of a django-q2 cluster.",
                hint='Use the "name" of an entry of Q_CLUSTER / Q_CLUSTERS, or None for the default cluster.',
                id=_id("E014"),
            )
        )
    rates = conf["API_THROTTLE_RATES"]
    if not isinstance(rates, dict) or not all(isinstance(rate, str | type(None)) for rate in rates.values()):
        errors.append(
            Error(
                f"{_name('API_THROTTLE_RATES')} must be a dict of DRF rates.",
                hint=f"Use e.g. {DEFAULTS['API_THROTTLE_RATES']!r}; None turns a scope's throttling off.",
                id=_id("E014"),
            )
        )
    return errors


@register()
def check_dotted_paths(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """E007: ``OWNER_RESOLVER``, ``RETRY_POLICY`` and ``RESOLVER`` import."""
    conf = _configured()
    if conf is None:
        return []
    errors: list[CheckMessage] = []
    for key in sorted(IMPORT_STRINGS):
        path = conf[key]
        if not isinstance(path, str):
            if callable(path):
                continue
            problem = f"is {path!r}, not a dotted path"
        else:
            try:
                import_string(path)
                continue
            except ImportError as exc:
                problem = f"= {path!r} could not be imported: {exc}"
        errors.append(
            Error(
                f"{_name(key)} {problem}.",
                hint=f"Point {_name(key)} at an importable object (default {DEFAULTS[key]!r}).",
                id=_id("E007"),
            )
        )
    return errors


@register()
def check_owner_model(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """E008: ``OWNER_MODEL`` names an installed model."""
    conf = _configured()
    if conf is None or conf["OWNER_MODEL"] is None:
        return []
    label = conf["OWNER_MODEL"]
    try:
        apps.get_model(label, require_ready=False)
    except (LookupError, ValueError, TypeError, AttributeError) as exc:
        return [
            Error(
                f"{_name('OWNER_MODEL')} = {label!r} is not an installed model: {exc}",
                hint='Use "app_label.ModelName" of a model in INSTALLED_APPS, or None for AUTH_USER_MODEL.',
                id=_id("E008"),
            )
        ]
    return []


@register()
def check_event_types(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """E009: names and entries of ``EVENT_TYPES``; E010: their JSON Schemas (the catalog's rules)."""
    conf = _configured()
    if conf is None:
        return []
    event_types = conf["EVENT_TYPES"]
    shape_hint = '{"order.created": {"description": "...", "schema": {...}, "example": {...}, "thin": False}}'
    if not isinstance(event_types, dict):
        return [Error(f"{_name('EVENT_TYPES')} must be a dict.", hint=f"Use {shape_hint}.", id=_id("E009"))]
    errors: list[CheckMessage] = []
    for name, spec in event_types.items():
        try:
            validate_event_type_name(name)
        except ValidationError as exc:
            errors.append(
                Error(
                    f"{_name('EVENT_TYPES')}: {' '.join(exc.messages)}",
                    hint="Use dot-separated words of letters, digits and _ (order.created).",
                    id=_id("E009"),
                )
            )
        if not isinstance(spec, dict):
            errors.append(
                Error(f"{_name('EVENT_TYPES')}[{name!r}] must be a dict.", hint=f"Use {shape_hint}.", id=_id("E009"))
            )
            continue
        unknown = sorted(map(str, set(spec) - set(DECLARATION_KEYS)))
        if unknown:
            errors.append(
                Error(
                    f"{_name('EVENT_TYPES')}[{name!r}] has unknown key(s): {', '.join(unknown)}.",
                    hint=f"Valid keys are {', '.join(DECLARATION_KEYS)}.",
                    id=_id("E009"),
                )
            )
        schema = spec.get("schema")
        problem = json_schema_problem(schema) if schema is not None else None
        if problem:
            errors.append(
                Error(
                    f"{_name('EVENT_TYPES')}[{name!r}]['schema']: {problem}",
                    hint="Fix the schema (jsonschema's check_schema tells what is wrong) or remove it.",
                    id=_id("E010"),
                )
            )
    return errors


@register()
def check_event_type_versions(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """E021: the versions of ``EVENT_TYPES`` entries; E022: their converters; W014: the converters
    tried on the current example (the rules of :mod:`django_webhooks.catalog`)."""
    conf = _configured()
    if conf is None or not isinstance(conf["EVENT_TYPES"], dict):
        return []  # E001, E009
    shape = (
        '{"version": 2, "schema": {...}, "versions": {1: {"schema": {...}, "example": {...}, '
        '"converter": "myapp.webhooks.order_created_v1"}}}'
    )
    messages: list[CheckMessage] = []
    for name, spec in conf["EVENT_TYPES"].items():
        if not isinstance(spec, dict):
            continue  # E009
        for problem in version_problems(name, spec):
            hint = f"Declare each older version still served with the converter that renders the one above it: {shape}."
            messages.append(Error(problem, hint=hint, id=_id("E021")))
        for problem in converter_problems(name, spec):
            hint = "Give a callable, or the dotted path of a function (data) -> data that imports."
            messages.append(Error(problem, hint=hint, id=_id("E022")))
        for problem in example_conversion_problems(name, spec):
            messages.append(
                Warning(
                    f"{_name('EVENT_TYPES')}[{name!r}]: {problem}.",
                    hint="Fix the converter or that version's schema: subscriptions pinned to it would get this data.",
                    id=_id("W014"),
                )
            )
    return messages


@register()
def check_bindings(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """E011: each ``BINDINGS`` entry builds (the same rules the registry applies at startup) and
    names a type declared in ``EVENT_TYPES``; an owner path must lead to ``OWNER_MODEL``."""
    conf = _configured()
    if conf is None or set(conf) - set(DEFAULTS):
        return []  # E001 reports the settings dict itself
    hint = (
        'Each binding is a dict like {"model": "shop.Order", "on": ["create"], "event_type": "order.created", '
        '"owner": "customer.user"}, with the event type declared in EVENT_TYPES.'
    )
    return [Error(problem, hint=hint, id=_id("E011")) for problem in BindingRegistry().check_declared()]


@register()
def check_alerts(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """E017/E018: the alert thresholds (:mod:`~django_webhooks.delivery.alerts`); W012: owner
    e-mails that can never be sent."""
    conf = _configured()
    if conf is None:
        return []
    messages: list[CheckMessage] = []
    failing_after = conf["ALERT_FAILING_AFTER"]
    if failing_after is not None and not (_is_number(failing_after, integer=True) and failing_after >= 0):
        messages.append(
            Error(
                f"{_name('ALERT_FAILING_AFTER')} is {failing_after!r}; it must be an integer >= 0 or None.",
                hint="Set the number of consecutive failed attempts after which the owner is warned "
                f"(default {DEFAULTS['ALERT_FAILING_AFTER']!r}); None or 0 turns the alert off.",
                id=_id("E017"),
            )
        )
    thresholds = conf["ALERT_BUDGET_THRESHOLDS"]
    valid = (
        isinstance(thresholds, list | tuple)
        and all(_is_number(percent, integer=True) and 0 < percent < 100 for percent in thresholds)
        and all(low < high for low, high in zip(thresholds, thresholds[1:], strict=False))
    )
    if not valid:
        messages.append(
            Error(
                f"{_name('ALERT_BUDGET_THRESHOLDS')} is {thresholds!r}; it must be a list of whole "
                "percentages from 1 to 99 in increasing order.",
                hint=f"Use e.g. {DEFAULTS['ALERT_BUDGET_THRESHOLDS']!r} (percent of AUTO_DISABLE_AFTER spent "
                "failing; disabling itself is 100), or [] for no budget alerts.",
                id=_id("E018"),
            )
        )
    notify = [key for key in ("NOTIFY_OWNER_ON_ALERT", "NOTIFY_OWNER_ON_DISABLE") if conf[key] is True]
    label = conf["OWNER_MODEL"] or settings.AUTH_USER_MODEL
    try:
        owner_model = apps.get_model(label, require_ready=False)
    except (LookupError, ValueError, TypeError, AttributeError):
        owner_model = None  # E008
    if notify and owner_model is not None and not hasattr(owner_model, "email"):
        messages.append(
            Warning(
                f"{' and '.join(map(_name, notify))} e-mail owners at their email attribute, but "
                f"{owner_model._meta.label} (the owner model) has none: no e-mail is ever sent.",
                hint="Give the owner model an email field or property, or turn the e-mails off and connect a "
                "receiver to the endpoint_failing / subscription_disabled signals instead.",
                id=_id("W012"),
            )
        )
    return messages


@register()
def check_transport_safety(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """W001/W002: targets that are only acceptable while developing."""
    conf = _configured()
    if conf is None or settings.DEBUG:
        return []
    warnings: list[CheckMessage] = []
    if conf["REQUIRE_HTTPS"] is False:
        warnings.append(
            Warning(
                f"{_name('REQUIRE_HTTPS')} is False while DEBUG is off: webhooks (and their signatures) may "
                "go to plain-http endpoints, readable and replayable by anyone on the path.",
                hint=f"Remove {_name('REQUIRE_HTTPS')} (https is then required whenever DEBUG is off) or set it to True.",
                id=_id("W001"),
            )
        )
    if conf["ALLOW_LOOPBACK"] is True:
        warnings.append(
            Warning(
                f"{_name('ALLOW_LOOPBACK')} is True while DEBUG is off: subscribers can make your workers "
                "send requests to services on 127.0.0.1 / ::1 of your own servers.",
                hint=f"Set {_name('ALLOW_LOOPBACK')} to False outside tests and local demos; list internal "
                "receivers you trust in ALLOWED_TARGETS instead.",
                id=_id("W002"),
            )
        )
    return warnings


@register()
def check_task_queue(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """W003-W009: django-q2 installed and configured so our tasks run once, in time, cheaply."""
    if (_configured() or DEFAULTS)["DISPATCHER"] != "django_q":
        return []  # another dispatcher, or an unknown one (E019)
    if not apps.is_installed("django_q"):
        return [
            Warning(
                '"django_q" is not in INSTALLED_APPS: events are recorded but no worker will deliver them.',
                hint='Add "django_q" to INSTALLED_APPS, set Q_CLUSTER, run migrate and start `manage.py qcluster`.',
                id=_id("W008"),
            )
        ]
    cluster = _q_cluster()
    if cluster is None:
        return [
            Warning(
                "Q_CLUSTER is not set, so django-q2 uses its defaults (a Redis broker on localhost, task "
                "results saved, failed tasks retried forever).",
                hint='Set Q_CLUSTER, e.g. {"name": "webhooks", "orm": "default", "timeout": 90, "retry": 120, '
                '"max_attempts": 1, "ack_failures": True, "save_limit": -1}. See docs/configuration.md.',
                id=_id("W009"),
            )
        ]
    conf = _configured() or DEFAULTS
    budget, request_timeout = conf["TASK_TIME_BUDGET"], conf["TIMEOUT"]
    task_seconds = budget + request_timeout if _is_number(budget) and _is_number(request_timeout) else None
    warnings: list[CheckMessage] = []
    timeout, retry = cluster.get("timeout"), cluster.get("retry", 60)
    if _is_number(retry) and (
        (_is_number(timeout) and retry <= timeout) or (timeout is None and task_seconds and retry <= task_seconds)
    ):
        limit = f"timeout ({timeout})" if timeout is not None else f"the longest run of our tasks ({task_seconds}s)"
        warnings.append(
            Warning(
                f'Q_CLUSTER["retry"] ({retry}) is not above {limit}: the broker hands a still-running task '
                "to a second worker, so it runs twice.",
                hint='Set Q_CLUSTER["timeout"] above TASK_TIME_BUDGET + TIMEOUT and Q_CLUSTER["retry"] above that.',
                id=_id("W003"),
            )
        )
    if _is_number(timeout) and task_seconds and timeout <= task_seconds:
        warnings.append(
            Warning(
                f'Q_CLUSTER["timeout"] ({timeout}) is not above {_name("TASK_TIME_BUDGET")} + '
                f"{_name('TIMEOUT')} ({task_seconds}): a delivery task can be killed mid-request and its "
                "deliveries wait for their lease to expire.",
                hint=f'Set Q_CLUSTER["timeout"] to more than {task_seconds} (e.g. {int(task_seconds * 2)}) or lower '
                "TASK_TIME_BUDGET.",
                id=_id("W004"),
            )
        )
    warnings.extend(_sqlite_warnings(cluster))
    save_limit = cluster.get("save_limit", 250)
    if _is_number(save_limit) and save_limit >= 0:
        warnings.append(
            Warning(
                f'Q_CLUSTER["save_limit"] is {save_limit}: django-q2 writes (and trims) a result row after every '
                "successful task; our tasks run every few seconds and return nothing worth keeping.",
                hint='Set Q_CLUSTER["save_limit"] to -1 (failures are still saved).',
                id=_id("W006"),
            )
        )
    max_attempts, ack_failures = cluster.get("max_attempts", 0), cluster.get("ack_failures", False)
    if max_attempts != 1 or ack_failures is not True:
        warnings.append(
            Warning(
                f"Q_CLUSTER has max_attempts={max_attempts!r} and ack_failures={ack_failures!r}: django-q2 will "
                "hand failed tasks out again. Our tasks are safe to drop (the sweeper re-enqueues work every "
                "minute and deliveries keep their own retry schedule), so re-running a failing task only "
                "repeats the failure and delays new deliveries.",
                hint='Set Q_CLUSTER["max_attempts"] = 1 and Q_CLUSTER["ack_failures"] = True.',
                id=_id("W007"),
            )
        )
    return warnings


@register()
def check_dispatcher(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """E019/E020/W013: the dispatcher exists and, for Django Tasks, takes our tasks in a worker."""
    conf = _configured()
    if conf is None:
        return []
    dispatcher = conf["DISPATCHER"]
    if dispatcher not in DISPATCHERS:
        return [
            Error(
                f"{_name('DISPATCHER')} is {dispatcher!r}: no such dispatcher, so no task is ever enqueued.",
                hint='Use "django_q" (django-q2, the default) or "django_tasks" (Django\'s Tasks framework).',
                id=_id("E019"),
            )
        ]
    if dispatcher != "django_tasks":
        return []
    try:
        framework = via_django_tasks.framework()
    except ImportError:
        framework = None
    if framework is None or (framework.__name__ == "django_tasks" and not apps.is_installed("django_tasks")):
        return [
            Warning(
                f'{_name("DISPATCHER")} is "django_tasks" but Django Tasks is not available (Django '
                f"{django.get_version()} has no django.tasks, and the django_tasks backport is not installed "
                "and in INSTALLED_APPS): events are recorded but no worker will deliver them.",
                hint='On Django 5.2, pip install "django-webhooks[tasks]" and add "django_tasks" and your '
                'backend\'s app (e.g. "django_tasks_db") to INSTALLED_APPS; or use Django 6.0 or later.',
                id=_id("W013"),
            )
        ]
    try:
        backend = via_django_tasks.backend()
    except Exception as exc:  # the framework's own message says what is wrong with TASKS
        return [
            Error(
                f'{_name("DISPATCHER")} is "django_tasks" but TASKS["default"] does not load: {exc}',
                hint='Set TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}, or another backend '
                "whose workers run the tasks.",
                id=_id("E019"),
            )
        ]
    messages: list[CheckMessage] = []
    if via_django_tasks.is_immediate(backend):
        messages.append(
            Error(
                'TASKS["default"] is the Immediate backend: every webhook would be delivered inside the '
                "request (or command) that saved the change, which then waits for each receiver.",
                hint='Use a backend whose workers run the tasks, e.g. TASKS = {"default": {"BACKEND": '
                '"django_tasks_db.DatabaseBackend"}} with `manage.py db_worker`. Silence this id only where '
                "delivering inline is what you want.",
                id=_id("E020"),
            )
        )
    queue = conf["QUEUE"] or framework.DEFAULT_TASK_QUEUE_NAME
    if backend.queues and queue not in backend.queues:
        messages.append(
            Error(
                f'{_name("QUEUE")} is {queue!r}, which is not in TASKS["default"]["QUEUES"] '
                f"({', '.join(sorted(backend.queues))}): the backend refuses every task we enqueue.",
                hint=f'Add {queue!r} to TASKS["default"]["QUEUES"], or set {_name("QUEUE")} to one of them.',
                id=_id("E019"),
            )
        )
    return messages


def _sqlite_warnings(cluster: dict[str, Any]) -> list[CheckMessage]:
    workers = cluster.get("workers") or os.cpu_count() or 1
    database = settings.DATABASES.get("default", {})
    if not database.get("ENGINE", "").endswith("sqlite3") or not _is_number(workers) or workers <= 1:
        return []
    init_command = str((database.get("OPTIONS") or {}).get("init_command", ""))
    if re.search(r"journal_mode\s*=\s*'?wal", init_command, re.IGNORECASE):
        return []
    return [
        Warning(
            f"SQLite is used with {workers} django-q2 workers without WAL: every write locks the whole "
            'database file, so workers and web requests fail with "database is locked".',
            hint='Use PostgreSQL for more than one worker, or set DATABASES OPTIONS {"init_command": '
            '"PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 20}, or set '
            'Q_CLUSTER["workers"] = 1.',
            id=_id("W005"),
        )
    ]


#: Shortest ``METRICS_TOKEN`` not warned about (W010): 32 characters of ``secrets.token_urlsafe()``.
MIN_METRICS_TOKEN_LENGTH = 32


@register()
def check_metrics(app_configs: Iterable[Any] | None, **kwargs: Any) -> list[CheckMessage]:
    """E016/W010: the metrics token and prometheus_client's multiprocess directory."""
    conf = _configured()
    if conf is None:
        return []
    messages: list[CheckMessage] = []
    token = conf["METRICS_TOKEN"]
    if not isinstance(token, str):
        messages.append(
            Error(
                f"{_name('METRICS_TOKEN')} must be a string.",
                hint='Set it to a long random string (secrets.token_urlsafe(32)), or to "" for staff-only access.',
                id=_id("E016"),
            )
        )
    elif token and len(token) < MIN_METRICS_TOKEN_LENGTH:
        messages.append(
            Warning(
                f"{_name('METRICS_TOKEN')} is {len(token)} characters long; anyone who guesses it reads the metrics.",
                hint=f"Use at least {MIN_METRICS_TOKEN_LENGTH} random characters: secrets.token_urlsafe(32).",
                id=_id("W010"),
            )
        )
    try:
        import prometheus_client  # noqa: F401
    except ImportError:
        if isinstance(token, str) and token:
            messages.append(
                Warning(
                    f"{_name('METRICS_TOKEN')} is set but prometheus_client is not installed: the metrics view answers 503.",
                    hint="pip install 'django-webhooks[metrics]'.",
                    id=_id("W010"),
                )
            )
        return messages
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path and not (os.path.isdir(path) and os.access(path, os.W_OK | os.X_OK)):
        messages.append(
            Error(
                f"PROMETHEUS_MULTIPROC_DIR is {path!r}, which is not a writable directory: no metric can be recorded.",
                hint="Create it (empty) before the web processes and the qcluster start, or unset the variable.",
                id=_id("E016"),
            )
        )
    return messages


@register(Tags.database)
def check_client_certificates(
    app_configs: Iterable[Any] | None, databases: Collection[str] | None = None, **kwargs: Any
) -> list[CheckMessage]:
    """W015: TLS client certificates (mutual TLS, :mod:`~django_webhooks.receiver_auth`) that
    expired or expire within ``CERTIFICATE_WARNING``; run when the checks get a database."""
    if not databases:
        return []
    from django.db import DatabaseError
    from django.utils import timezone

    from .models import ReceiverAuth
    from .receiver_auth import CERTIFICATE_WARNING

    now = timezone.now()
    try:
        expiring = list(
            ReceiverAuth.objects.filter(client_certificate_expires_at__lt=now + CERTIFICATE_WARNING)
            .order_by("client_certificate_expires_at")
            .values_list("subscription_id", "client_certificate_expires_at")[:20]
        )
    except DatabaseError:  # not migrated yet
        return []
    return [
        Warning(
            f"The TLS client certificate of subscription {subscription_id} "
            + ("expired" if expires_at <= now else "expires")
            + f" on {expires_at:%Y-%m-%d %H:%M} UTC; requests to it will fail the TLS handshake.",
            hint="Upload a renewed certificate and key in the subscription's receiver authentication "
            "(admin, or the API's auth.client_certificate and auth.client_key).",
            id=_id("W015"),
        )
        for subscription_id, expires_at in expiring
        if expires_at is not None
    ]
