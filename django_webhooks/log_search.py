"""The search box of the log pages (admin and portal): one syntax, each term through an index.

The log tables grow to millions of rows, so a search term never becomes a ``LIKE '%term%'`` over a
column. :func:`parse_log_search` reads the box into a :class:`LogSearch`, and
:func:`apply_log_search` filters one of the three tables with it:

* ``msg_…``: a message id (the ``webhook-id`` header) or the start of one. PostgreSQL answers
  ``LIKE 'prefix%'`` from the ``varchar_pattern_ops`` index Django creates next to the unique
  index of ``message_id`` (a plain btree in a non-C collation cannot serve a ``LIKE``); SQLite's
  ``LIKE`` ignores case and so no index serves it, and the prefix is also given as the range
  ``prefix <= message_id < next`` its binary-collated unique index can read.
* ``123``: an event id (the event's primary key; a delivery's or an attempt's event).
* ``key=value``, ``customer.country=NL`` or a JSON object ``{"tags": ["vip"]}``: events whose
  payload contains this. On PostgreSQL it is one jsonb containment (``payload @> …``) answered by
  the ``dwh_event_payload_gin`` index (``jsonb_path_ops``, migration 0005); other databases have no
  such index, so they compare the values (``JSON_EXTRACT``) in the newest
  :data:`PAYLOAD_SCAN_LIMIT` events only, a bounded scan of the primary key's range.
* anything else: an exact idempotency key (events) or a message id prefix (deliveries, attempts).

Terms are separated by spaces (quote a value that has some: ``name="Jane Doe"``) and must all
match.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.db import connections
from django.db.models import F, Max, Q, QuerySet
from django.db.models.fields.json import KeyTransform
from django.utils.translation import gettext_lazy as _

from .capture.payloads import json_problems, text_problem
from .models import Event

#: The start of every message id (``models.new_message_id``).
MESSAGE_ID_PREFIX = "msg_"
#: The largest primary key (a 64-bit integer); a longer number is no event id.
MAX_EVENT_ID = 2**63 - 1
#: Events a payload search reads at most on a database without a JSON index (not PostgreSQL).
PAYLOAD_SCAN_LIMIT = 100_000

SEARCH_HELP_TEXT = _(
    "msg_… finds a message id (webhook-id) or the start of one; a number finds an event id; "
    'key=value, customer.country=NL or a JSON object such as {"tags": ["vip"]} finds events whose '
    'payload contains it (values are JSON: id=42 is a number, id="42" a string); separate terms with '
    "spaces, all must match."
)


class InvalidSearch(ValueError):
    """A search term that cannot be read; the message says why, for the staff user."""


@dataclass
class LogSearch:
    """What the search box asked for; every part given must match."""

    message_id_prefixes: list[str] = field(default_factory=list)
    event_ids: list[int] = field(default_factory=list)
    #: The JSON document the payload must contain (nested objects for dotted keys).
    payload: dict[str, Any] = field(default_factory=dict)
    #: Terms of no other syntax (an idempotency key, or a message id without its ``msg_``).
    words: list[str] = field(default_factory=list)


#: One term: characters other than spaces, or double-quoted strings (JSON's, so ``\"`` escapes).
TERM_RE = re.compile(r'(?:[^\s"]|"(?:[^"\\]|\\.)*")+')


def parse_log_search(term: str) -> LogSearch:
    """Read the search box; raises :class:`InvalidSearch` for a JSON object or value that is not valid."""
    problem = text_problem(term)
    if problem:
        raise InvalidSearch(_("The search %(problem)s.") % {"problem": problem})
    search = LogSearch()
    decoder = json.JSONDecoder()
    position = 0
    while True:
        while position < len(term) and term[position].isspace():
            position += 1
        if position >= len(term):
            return search
        document: Any
        if term[position] == "{":
            # A JSON object may hold spaces: it is one term, however it is spelled.
            try:
                document, position = decoder.raw_decode(term, position)
            except (ValueError, RecursionError):
                raise InvalidSearch(
                    _("%(term)s… is not a valid JSON object.") % {"term": term[position : position + 40]}
                ) from None
            _merge(search.payload, _checked(document), term[:position][-40:])
            continue
        match = TERM_RE.match(term, position)
        token = match.group(0) if match else term[position:]
        position += len(token)
        if token.startswith(MESSAGE_ID_PREFIX):
            search.message_id_prefixes.append(token)
        elif token.isascii() and token.isdigit() and int(token) <= MAX_EVENT_ID:
            search.event_ids.append(int(token))
        elif "=" in token and not token.startswith("="):
            path, _sep, raw = token.partition("=")
            keys = path.split(".")
            if not all(keys):
                raise InvalidSearch(_("%(term)s has an empty key.") % {"term": token})
            document = _json_value(raw)
            for key in reversed(keys):
                document = {key: document}
            _merge(search.payload, _checked(document), token)
        else:
            search.words.append(_unquoted(token))


def _checked(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` if it could be stored as an event payload (the capture side's rule), else :class:`InvalidSearch`."""
    problems = json_problems(document)
    if problems:
        raise InvalidSearch(_("The payload searched for is not valid JSON: %(problem)s.") % {"problem": problems[0]})
    return document


def _json_value(raw: str) -> Any:
    """A ``key=value`` value: JSON if it is some (``42``, ``true``, ``null``, ``"42"``), else the text."""
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):
        return raw


def _unquoted(token: str) -> str:
    """A word as typed, or the string it quotes (``"order 42"``)."""
    if len(token) >= 2 and token[0] == token[-1] == '"':
        value = _json_value(token)
        if isinstance(value, str):
            return value
    return token


def _merge(into: dict[str, Any], document: dict[str, Any], token: str) -> None:
    """Add ``document`` to ``into``; two different values for one key cannot both be contained."""
    for key, value in document.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value, token)
        elif key in into and into[key] != value:
            raise InvalidSearch(_("%(term)s asks for another value of %(key)s.") % {"term": token, "key": key})
        else:
            into[key] = value


@dataclass(frozen=True)
class LogPaths:
    """Where one log table reaches the searched columns (ORM paths)."""

    event_id: str
    payload: str
    message_id: str
    #: The idempotency key, for the events' table only.
    idempotency_key: str | None = None


EVENT_PATHS = LogPaths(
    event_id="pk", payload="payload", message_id="deliveries__message_id", idempotency_key="idempotency_key"
)
DELIVERY_PATHS = LogPaths(event_id="event_id", payload="event__payload", message_id="message_id")
ATTEMPT_PATHS = LogPaths(
    event_id="delivery__event_id", payload="delivery__event__payload", message_id="delivery__message_id"
)


@dataclass(frozen=True)
class SearchResult:
    """A log table's rows that match a search, and what the admin should know about them."""

    queryset: QuerySet
    #: The search follows a to-many relation (events by message id): rows may repeat.
    may_have_duplicates: bool = False
    #: The payload was compared in this many newest events only (:data:`PAYLOAD_SCAN_LIMIT`), and
    #: there are older ones; None when every event was searched.
    window: int | None = None


def apply_log_search(queryset: QuerySet, search: LogSearch, paths: LogPaths) -> SearchResult:
    """The rows of ``queryset`` (a log table reached through ``paths``) that match ``search``."""
    vendor = connections[queryset.db].vendor
    condition = Q()
    prefixes = list(search.message_id_prefixes)
    if paths.idempotency_key is None:
        prefixes += search.words
    for prefix in prefixes:
        condition &= message_id_prefix_condition(paths.message_id, prefix, vendor)
    for event_id in search.event_ids:
        by_id = Q(**{paths.event_id: event_id})
        if paths.idempotency_key is not None:
            by_id |= Q(**{paths.idempotency_key: str(event_id)})
        condition &= by_id
    if paths.idempotency_key is not None:
        for word in search.words:
            condition &= Q(**{paths.idempotency_key: word})
    window = None
    if search.payload and vendor == "postgresql":
        condition &= Q(**{f"{paths.payload}__contains": search.payload})
    elif search.payload:
        newest = Event.objects.using(queryset.db).aggregate(newest=Max("pk"))["newest"] or 0
        condition &= Q(**{f"{paths.event_id}__gt": newest - PAYLOAD_SCAN_LIMIT})
        window = PAYLOAD_SCAN_LIMIT if newest > PAYLOAD_SCAN_LIMIT else None
        aliases: dict[str, Any] = {}
        for index, (keys, value) in enumerate(_leaves(search.payload)):
            expression: Any = F(paths.payload)
            for key in keys:
                expression = KeyTransform(key, expression)
            # Through an alias, so no key is read as a lookup ("contains", "in") or split at "__".
            aliases[f"dwh_payload_{index}"] = expression
            condition &= Q(**{f"dwh_payload_{index}": value})
        queryset = queryset.alias(**aliases)
    duplicates = paths.idempotency_key is not None and bool(search.message_id_prefixes)
    return SearchResult(queryset.filter(condition), may_have_duplicates=duplicates, window=window)


def message_id_prefix_condition(path: str, prefix: str, vendor: str) -> Q:
    """Rows whose message id (at ``path``) starts with ``prefix``, in a way ``vendor``'s index serves."""
    condition = Q(**{f"{path}__startswith": prefix})
    if vendor == "sqlite" and prefix:
        # UTF-8 sorts like code points, so the strings with this prefix are exactly this range.
        upper = prefix[:-1] + chr(ord(prefix[-1]) + 1) if ord(prefix[-1]) < 0x10FFFF else None
        condition &= Q(**{f"{path}__gte": prefix})
        if upper is not None and not 0xD800 <= ord(upper[-1]) <= 0xDFFF:
            condition &= Q(**{f"{path}__lt": upper})
    return condition


def _leaves(document: dict[str, Any], keys: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], Any]]:
    """The key paths of ``document`` down to its values that are not non-empty objects."""
    leaves: list[tuple[tuple[str, ...], Any]] = []
    for key, value in document.items():
        if isinstance(value, dict) and value:
            leaves += _leaves(value, (*keys, key))
        else:
            leaves.append(((*keys, key), value))
    return leaves
