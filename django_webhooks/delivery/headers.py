"""Request headers: which a subscription may set, which every request carries, which are credentials.

One home for the header rules the transport, the engine, the attempt log, the admin and the API use:

* *Protected* headers (:data:`PROTECTED_HEADERS`, every ``webhook-*`` name) are ours: a
  subscription's custom headers cannot set them (:func:`validate_custom_headers` refuses them in
  the admin form and the API; :func:`request_headers` drops them if stored anyway).
* *Default* headers (:func:`default_headers`: ``User-Agent``, ``Content-Type``) are on every request.
* *Credential* headers (:func:`is_credential_header`) and signatures are never stored or shown:
  :func:`redact_headers` is what an attempt stores (and the API returns), :func:`masked_headers`
  what the admin displays; the header of a receiver's authentication (an API key under any
  name) is redacted before that (:func:`redact_credentials`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .. import __version__
from ..conf import webhooks_settings
from .formats import CLOUDEVENTS_HEADERS

#: Headers a subscription's custom headers cannot set or override (compared case-insensitively):
#: ours, and framing and hop-by-hop headers, which would corrupt the request or smuggle a second one.
PROTECTED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "transfer-encoding",
        "user-agent",
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "cookie",
    }
    # The CloudEvents attributes binary mode sends.
    | CLOUDEVENTS_HEADERS
)
#: Prefix of the Standard Webhooks headers; every name with it is ours.
PROTECTED_HEADER_PREFIX = "webhook-"
#: RFC 9110 field-name characters.
HEADER_NAME_RE = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
#: Longest custom header name and value a subscription may set.
MAX_HEADER_NAME_LENGTH = 100
MAX_HEADER_VALUE_LENGTH = 1000

#: The header carrying the signatures (one ``v1,...`` per secret, space-separated).
SIGNATURE_HEADER = "webhook-signature"
#: Header names whose values are credentials (lowercase), and words that make a name one.
CREDENTIAL_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie"})
CREDENTIAL_WORDS = ("token", "secret", "password", "api-key", "apikey", "auth")
#: What an attempt record keeps of a credential, and of each signature.
REDACTED = "<redacted>"
REDACTED_SIGNATURE = "v1,<redacted>"
#: What the admin shows instead of a credential.
MASKED = "•••••• (hidden)"


# -- protected and default headers ------------------------------------------------------------------


def is_protected_header(name: str) -> bool:
    """Whether ``name`` is a header only django-webhooks sets (see :data:`PROTECTED_HEADERS`)."""
    lowered = name.lower()
    return lowered in PROTECTED_HEADERS or lowered.startswith(PROTECTED_HEADER_PREFIX)


def user_agent() -> str:
    return webhooks_settings.USER_AGENT or f"django-webhooks/{__version__}"


def default_headers() -> dict[str, str]:
    """The headers every request carries whatever else it has (``USER_AGENT``, JSON body)."""
    return {"User-Agent": user_agent(), "Content-Type": "application/json"}


def request_headers(
    subscription_headers: Mapping[str, object] | None,
    signed_headers: Mapping[str, str],
    trace_headers: Mapping[str, str] | None = None,
    format_headers: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Merge a subscription's custom headers with ours; protected names (:func:`is_protected_header`) are ours.

    Custom headers with names or values that cannot be sent (line breaks) are dropped.
    ``trace_headers`` (the request span's ``traceparent`` and ``tracestate``, for a subscription
    that opted in) replace custom headers of the same names. Neither is a credential: an attempt
    stores them as sent, and the signature does not cover headers. ``format_headers`` (the
    body's Content-Type and CloudEvents ``ce-*`` attributes,
    :func:`~django_webhooks.delivery.formats.format_headers`) come last.
    """
    overridden = {name.lower() for name in trace_headers} if trace_headers else set()
    headers: dict[str, str] = {}
    for raw_name, raw_value in (subscription_headers or {}).items():
        name, value = str(raw_name).strip(), str(raw_value)
        if not name or is_protected_header(name) or unsendable(name) or unsendable(value):
            continue
        if name.lower() in overridden:
            continue
        headers[name] = value
    headers.update(signed_headers)
    if trace_headers:
        headers.update(trace_headers)
    headers.update(default_headers())
    if format_headers:
        headers.update(format_headers)
    return headers


def unsendable(text: str) -> bool:
    """Whether ``text`` cannot go in a header line (a line break or a NUL would split or end it)."""
    return any(char in text for char in "\r\n\0")


def validate_custom_headers(headers: object) -> None:
    """Refuse custom headers a subscription may not send; the admin form and the API use it.

    Raises :class:`~django.core.exceptions.ValidationError` with one message per refused header.
    """
    if not isinstance(headers, dict):
        raise ValidationError(_("Headers must be a JSON object of names to values."), code="invalid_headers")
    limit = webhooks_settings.MAX_CUSTOM_HEADERS
    if len(headers) > limit:
        raise ValidationError(
            _("At most %(limit)d custom headers are allowed."), code="too_many_headers", params={"limit": limit}
        )
    errors: list[ValidationError] = []
    seen: set[str] = set()
    for name, value in headers.items():
        problem = _header_problem(name, value, seen)
        if problem is not None:
            errors.append(problem)
        seen.add(name.lower())
    if errors:
        raise ValidationError(errors)


def _header_problem(name: str, value: object, seen: set[str]) -> ValidationError | None:
    params = {"name": name}
    if len(name) > MAX_HEADER_NAME_LENGTH:
        return ValidationError(
            _("Header names have at most %(limit)d characters: %(name)s"),
            code="invalid_header",
            params={**params, "limit": MAX_HEADER_NAME_LENGTH},
        )
    if not HEADER_NAME_RE.fullmatch(name):
        return ValidationError(_("%(name)r is not a valid header name."), code="invalid_header", params=params)
    if is_protected_header(name):
        return ValidationError(
            _("The header %(name)s is set by django-webhooks and cannot be overridden."),
            code="protected_header",
            params=params,
        )
    if name.lower() in seen:
        return ValidationError(
            _("%(name)s is listed twice (header names are case-insensitive)."), code="duplicate_header", params=params
        )
    if not isinstance(value, str):
        return ValidationError(_("The value of %(name)s must be a string."), code="invalid_header", params=params)
    if len(value) > MAX_HEADER_VALUE_LENGTH:
        return ValidationError(
            _("The value of %(name)s has more than %(limit)d characters."),
            code="invalid_header",
            params={**params, "limit": MAX_HEADER_VALUE_LENGTH},
        )
    if unsendable(value):
        return ValidationError(
            _("The value of %(name)s contains a line break or a NUL character."), code="invalid_header", params=params
        )
    return None


# -- credentials: never stored, never shown ---------------------------------------------------------


def is_credential_header(name: str) -> bool:
    """Whether a header's value is a credential (never stored, never shown)."""
    lowered = name.lower()
    return lowered in CREDENTIAL_HEADERS or any(word in lowered for word in CREDENTIAL_WORDS)


def redact_credentials(headers: Mapping[str, str], credential_headers: Mapping[str, str]) -> dict[str, str]:
    """``headers`` with the values of ``credential_headers`` (a receiver's authentication, whatever
    the header's name: :mod:`django_webhooks.delivery.credentials`) replaced by :data:`REDACTED`."""
    names = {name.lower() for name in credential_headers}
    return {name: REDACTED if name.lower() in names else value for name, value in headers.items()}


def _signature_versions(value: object) -> list[str]:
    """The version of each signature in a ``webhook-signature`` value (``v1``, ``v1a``), in order."""
    versions = [entry.partition(",")[0] for entry in str(value).split()]
    return [version if re.fullmatch(r"v\d{1,2}a?", version) else "v?" for version in versions]


def redact_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Request headers as stored on an attempt (and returned by the API): no signature, no credential.

    ``webhook-signature`` keeps one ``<version>,<redacted>`` per signature sent (``v1,<redacted>
    v1a,<redacted>``), so the log still shows that a rotation sent two, and of which kinds.
    """
    stored: dict[str, str] = {}
    for name, value in headers.items():
        if name.lower() == SIGNATURE_HEADER:
            entries = [f"{version},{REDACTED}" for version in _signature_versions(value)]
            stored[name] = " ".join(entries) or REDACTED_SIGNATURE
        elif is_credential_header(name):
            stored[name] = REDACTED
        else:
            stored[name] = value
    return stored


def masked_headers(headers: Mapping[str, object] | None) -> dict[str, object]:
    """Request headers as the admin shows them: signatures and credentials replaced by a placeholder.

    Applied to stored headers (already redacted), and safe on any others.
    """
    masked: dict[str, object] = {}
    for name, value in (headers or {}).items():
        if name.lower() == SIGNATURE_HEADER:
            versions = _signature_versions(value) or ["v1"]
            count = len(versions)
            kinds = "/".join(dict.fromkeys(versions))
            masked[name] = f"{kinds},•••••• ({count} signature{'s' if count != 1 else ''}, hidden)"
        elif is_credential_header(name):
            masked[name] = MASKED
        else:
            masked[name] = value
    return masked
