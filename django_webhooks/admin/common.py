"""Building blocks shared by the webhook admins: cheap pagination, owner labels, filters, JSON display.

The log tables (events, deliveries, attempts) grow to millions of rows, so nothing here runs a
query whose cost grows with the table: counts are capped (or estimated on PostgreSQL), the date
hierarchy is derived from one MIN/MAX query, and filter choices come from the small tables
(subscriptions, the event catalog).
"""

from __future__ import annotations

import calendar
import datetime
import json
from collections.abc import Iterable, Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Max, Min, Model, Q, QuerySet
from django.http import HttpRequest
from django.urls import NoReverseMatch, reverse
from django.utils import formats, timezone
from django.utils.functional import cached_property
from django.utils.html import format_html
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from ..catalog import known_event_types, patterns_matching
from ..delivery.operations import TEST_EVENT_TYPE
from ..log_search import SEARCH_HELP_TEXT, InvalidSearch, LogPaths, apply_log_search, parse_log_search
from ..models import Subscription
from ..owners import get_owners

#: Rows a list page counts at most; more are shown as this number (page through with filters).
COUNT_LIMIT = 10_000
#: Choices offered by the owner and subscription filters.
FILTER_CHOICES_LIMIT = 100
#: Characters of a response body shown on the delivery page.
BODY_PREVIEW_CHARS = 2_000
NO_OWNER = "__none__"


class CappedCountPaginator(Paginator):
    """Counts at most :data:`COUNT_LIMIT` rows; an unfiltered PostgreSQL table uses its row estimate."""

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet):
            return len(queryset)
        if not queryset.query.where and connections[queryset.db].vendor == "postgresql":
            estimate = _estimated_rows(queryset)
            if estimate > COUNT_LIMIT:
                return estimate
        return queryset.order_by().values("pk")[:COUNT_LIMIT].count()


def _estimated_rows(queryset: QuerySet) -> int:
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)", [queryset.model._meta.db_table]
        )
        row = cursor.fetchone()
    return max(int(row[0]), 0) if row else 0


class PageChangeList(ChangeList):
    """A change list that lets its admin load per-page extras (owners, health) in bulk."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        page = list(self.result_list)
        prepare = getattr(self.model_admin, "prepare_page", None)
        if prepare is not None:
            prepare(request, page)

    def cheap_date_hierarchy(self) -> dict[str, Any] | None:
        """Django's date hierarchy, but periods come from MIN/MAX instead of a scan of distinct dates."""
        if not self.date_hierarchy:
            return None
        field = self.date_hierarchy
        params = {part: self.params.get(f"{field}__{part}") for part in ("year", "month", "day")}
        year, month, day = (int(value) if value else None for value in params.values())
        span = self.queryset.order_by().aggregate(first=Min(field), last=Max(field))
        if span["first"] is None:
            return {"show": False}
        first, last = (timezone.localtime(span[k]) for k in ("first", "last"))

        def link(values: dict[str, Any]) -> str:
            return self.get_query_string({f"{field}__{k}": v for k, v in values.items()}, [f"{field}__"])

        if year and month and day:
            return {
                "show": True,
                "back": {"link": link({"year": year, "month": month}), "title": f"{calendar.month_name[month]} {year}"},
                "choices": [{"title": formats.date_format(datetime.date(year, month, day), "MONTH_DAY_FORMAT")}],
            }
        if year and month:
            days = [datetime.date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1)]
            days = [d for d in days if first.date() <= d <= last.date()]
            return {
                "show": True,
                "back": {"link": link({"year": year}), "title": str(year)},
                "choices": [
                    {
                        "link": link({"year": year, "month": month, "day": d.day}),
                        "title": formats.date_format(d, "MONTH_DAY_FORMAT"),
                    }
                    for d in days
                ],
            }
        if year or first.year == last.year:
            year = year or first.year
            months = [m for m in range(1, 13) if (first.year, first.month) <= (year, m) <= (last.year, last.month)]
            return {
                "show": True,
                "back": {"link": link({}), "title": _("All dates")} if params["year"] else None,
                "choices": [
                    {
                        "link": link({"year": year, "month": m}),
                        "title": capfirst(formats.date_format(datetime.date(year, m, 1), "YEAR_MONTH_FORMAT")),
                    }
                    for m in months
                ],
            }
        return {
            "show": True,
            "back": None,
            "choices": [{"link": link({"year": y}), "title": str(y)} for y in range(first.year, last.year + 1)],
        }


class LogAdmin(admin.ModelAdmin):
    """Read-only admin of a log table: no add or change, cheap counts, per-page extras, and the
    search of :mod:`.search` (message id prefix, event id, payload), each term through an index."""

    paginator = CappedCountPaginator
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    change_list_template = "django_webhooks/admin/log_change_list.html"
    list_per_page = 50
    #: Where the table reaches the searched columns; ``search_fields`` only shows the box.
    log_search_paths: LogPaths
    search_fields = ["id"]
    search_help_text = SEARCH_HELP_TEXT

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return PageChangeList

    def get_search_results(self, request: HttpRequest, queryset: QuerySet, search_term: str) -> tuple[QuerySet, bool]:
        if not search_term.strip():
            return queryset, False
        try:
            search = parse_log_search(search_term)
        except InvalidSearch as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return queryset.none(), False
        result = apply_log_search(queryset, search, self.log_search_paths)
        if result.window is not None:
            self.message_user(
                request,
                _(
                    "Payload search looked at the newest %(limit)s events only: this database has no JSON "
                    "index (PostgreSQL searches every event). Add a filter, or search by message or event id."
                )
                % {"limit": f"{result.window:,}"},
                messages.WARNING,
            )
        return result.queryset, result.may_have_duplicates

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


def flat_field_names(fields: Iterable[str | Sequence[str]]) -> list[str]:
    """The names in an admin ``fields`` list whose rows may be tuples (for ``readonly_fields``)."""
    return [name for row in fields for name in ((row,) if isinstance(row, str) else row)]


# --- owners ----------------------------------------------------------------------------------


def owner_link(owner_id: str | None, owners: dict[str, Model]) -> str:
    """The owner's name linked to its admin page, ``owner_id`` if it is gone, "staff" if none."""
    if owner_id is None:
        return format_html('<span class="quiet">{}</span>', _("staff-managed"))
    owner = owners.get(owner_id)
    if owner is None:
        return format_html('{} <span class="quiet">({})</span>', owner_id, _("not found"))
    opts = owner._meta
    try:
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[owner.pk])
    except NoReverseMatch:
        return format_html("{} <span class='quiet'>#{}</span>", owner, owner_id)
    return format_html('<a href="{}">{}</a>', url, owner)


# --- filters ---------------------------------------------------------------------------------


class OwnerFilter(admin.SimpleListFilter):
    """Owners that have subscriptions (the small table), applied to ``owner_path``."""

    title = _("owner")
    parameter_name = "owner"
    owner_path = "owner_id"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        owner_ids = [
            owner_id
            for owner_id in Subscription.objects.exclude(owner_id=None)
            .order_by("owner_id")
            .values_list("owner_id", flat=True)
            .distinct()[:FILTER_CHOICES_LIMIT]
            if owner_id is not None
        ]
        owners = get_owners(owner_ids)
        choices = [(NO_OWNER, str(_("staff-managed")))]
        choices += [(owner_id, f"{owners[owner_id]}" if owner_id in owners else owner_id) for owner_id in owner_ids]
        value = self.value()
        if value and value not in {c[0] for c in choices}:
            choices.append((value, value))
        return choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if value == NO_OWNER:
            return queryset.filter(**{f"{self.owner_path}__isnull": True})
        return queryset.filter(**{self.owner_path: value})


class SubscriptionOwnerFilter(OwnerFilter):
    owner_path = "subscription__owner_id"


class EventTypeFilter(admin.SimpleListFilter):
    """Event types of the catalog (``EVENT_TYPES`` and ``EventType`` rows) and the ones django-webhooks
    sends itself (test events), applied to ``event_type_path``."""

    title = _("event type")
    parameter_name = "event_type"
    event_type_path = "event_type"

    def own_event_types(self) -> list[str]:
        """Types no catalog lists that the log holds: ``webhook.test``, sent by the test actions."""
        return [TEST_EVENT_TYPE]

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        names = list(known_event_types())
        names += [name for name in self.own_event_types() if name not in names]
        value = self.value()
        if value and value not in names:
            names.append(value)
        return [(name, name) for name in names]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if not self.value():
            return queryset
        return queryset.filter(**{self.event_type_path: self.value()})


class DeliveryEventTypeFilter(EventTypeFilter):
    event_type_path = "event__event_type"


class SubscriptionFilter(admin.SimpleListFilter):
    """The newest subscriptions as choices; any ``?subscription=<id>`` (from links) is accepted."""

    title = _("subscription")
    parameter_name = "subscription"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        ids = list(Subscription.objects.order_by("-id").values_list("id", "url")[:FILTER_CHOICES_LIMIT])
        value = self.value()
        if value and value.isdigit() and int(value) not in {pk for pk, _url in ids}:
            ids += list(Subscription.objects.filter(pk=int(value)).values_list("id", "url"))
        return [(str(pk), f"#{pk} {url}") for pk, url in ids]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        if not value.isdigit():
            return queryset.none()
        return queryset.filter(subscription_id=int(value))


class SubscribedEventTypeFilter(EventTypeFilter):
    """Subscriptions that receive the chosen event type, by name or by a wildcard pattern."""

    title = _("receives event type")

    def own_event_types(self) -> list[str]:
        """None: a test event goes to the chosen subscription whatever it subscribes to."""
        return []

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        value = self.value()
        if not value:
            return queryset
        condition = Q()
        for pattern in patterns_matching(value):
            condition |= Q(event_types__icontains=json.dumps(pattern))
        return queryset.filter(condition)


# --- display ---------------------------------------------------------------------------------


def pretty_json(value: Any) -> str:
    """``value`` (or JSON text) indented in a ``<pre>``."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return format_html('<pre class="dwh-json">{}</pre>', value)
    return format_html(
        '<pre class="dwh-json">{}</pre>', json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    )


def truncated(text: str, limit: int = BODY_PREVIEW_CHARS) -> str:
    if len(text) <= limit:
        return text
    return f"{text[:limit]}\n… ({len(text) - limit} more characters)"


def precise_time(value: datetime.datetime | None) -> str:
    """``value`` to the second in the current time zone (retries can be seconds apart), full ISO in a tooltip."""
    if value is None:
        return "—"
    local = timezone.localtime(value)
    iso = local.isoformat()
    return format_html('<time datetime="{}" title="{}">{}</time>', iso, iso, local.strftime("%Y-%m-%d %H:%M:%S"))


def elapsed(seconds: float) -> str:
    """A duration as the staff read a retry schedule: ``+4 s``, ``+2 min 5 s``, ``+3 h 2 min``, ``+2 d 4 h``."""
    whole = max(int(seconds), 0)
    days, rest = divmod(whole, 86_400)
    hours, rest = divmod(rest, 3_600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"+{days} d {hours} h"
    if hours:
        return f"+{hours} h {minutes} min"
    if minutes:
        return f"+{minutes} min {secs} s"
    return f"+{secs} s"
