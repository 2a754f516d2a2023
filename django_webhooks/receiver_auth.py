"""How requests prove to a receiver who sends them: one :class:`~django_webhooks.models.ReceiverAuth` per subscription.

A subscription's requests carry at most one header credential (``method``): HTTP Basic, a
bearer token, an API key in a header of its own, or an OAuth2 access token obtained with the
client credentials grant (RFC 6749 section 4.4; :mod:`django_webhooks.delivery.oauth`). Any of
them may be combined with a TLS client certificate (mutual TLS) and a CA bundle trusted for the
endpoint in place of the public authorities.

Secrets (password, token, client secret, the ``private_key_jwt`` key, the TLS client key) are
encrypted with the key ring of :mod:`django_webhooks.crypto` and never returned by anything
here except :func:`load_credentials`, which the delivery engine calls. :func:`configure_auth`
validates a change (:func:`auth_problems`: the field messages the admin form and the API show)
and stores it; a secret given replaces the stored one (rotation), one left out is kept.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from . import crypto
from .delivery.headers import HEADER_NAME_RE, REDACTED, is_protected_header, unsendable
from .delivery.targets import target_validator
from .delivery.transport import ClientTLS
from .models import AuthMethod, OAuthClientAuth, OAuthToken, ReceiverAuth, Subscription

#: Settings kept in the clear (certificates are public).
PLAIN_FIELDS = (
    "method",
    "username",
    "header_name",
    "token_url",
    "client_id",
    "client_auth",
    "key_id",
    "scope",
    "audience",
    "resource",
    "client_certificate",
    "ca_bundle",
)
#: Secrets, stored encrypted in ``encrypted_<name>``; each method uses some of them.
SECRET_FIELDS = ("password", "token", "client_secret", "private_key", "client_key")
#: Longest PEM text accepted (a certificate chain or a CA bundle).
MAX_PEM_LENGTH = 65536
#: Longest secret accepted otherwise.
MAX_SECRET_LENGTH = 4096
#: The system check (W015) and the admin warn about a client certificate expiring this soon.
CERTIFICATE_WARNING = timedelta(days=14)
#: Smallest RSA key accepted (client certificate key or ``private_key_jwt``).
MIN_RSA_BITS = 2048
#: Secrets shorter than this are not searched for in a receiver's answer (:func:`redact_secrets`):
#: they would match by chance.
MIN_REDACTED_LENGTH = 4

_METHOD_SECRETS = {
    AuthMethod.NONE: (),
    AuthMethod.BASIC: ("password",),
    AuthMethod.BEARER: ("token",),
    AuthMethod.API_KEY: ("token",),
    AuthMethod.OAUTH2: ("client_secret", "private_key"),
}
_METHOD_FIELDS = {
    AuthMethod.NONE: (),
    AuthMethod.BASIC: ("username",),
    AuthMethod.BEARER: (),
    AuthMethod.API_KEY: ("header_name",),
    AuthMethod.OAUTH2: ("token_url", "client_id", "client_auth", "key_id", "scope", "audience", "resource"),
}


# -- runtime view (the delivery engine) -------------------------------------------------------------


@dataclass(frozen=True)
class OAuthClient:
    """What a client credentials token request needs (:mod:`django_webhooks.delivery.oauth`)."""

    receiver_auth_id: int
    token_url: str
    client_id: str
    client_auth: str
    client_secret: str = field(default="", repr=False)
    private_key: str = field(default="", repr=False)
    key_id: str = ""
    scope: str = ""
    audience: str = ""
    resource: str = ""
    #: The endpoint's TLS client settings, used for the token endpoint too.
    tls: ClientTLS | None = None

    @property
    def fingerprint(self) -> str:
        """Names these settings (secrets included, hashed): a token obtained with others is not used."""
        parts = (
            self.token_url,
            self.client_id,
            self.client_auth,
            self.client_secret,
            self.private_key,
            self.key_id,
            self.scope,
            self.audience,
            self.resource,
        )
        return hashlib.sha256("\0".join(parts).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Credentials:
    """A subscription's receiver authentication, decrypted, as a sender thread uses it."""

    method: str
    #: ``ReceiverAuth.updated_at``: a worker re-reads the credentials when it changes.
    version: datetime | None
    #: The header credential of ``basic``, ``bearer`` and ``api_key`` (name and value).
    static_headers: dict[str, str] = field(default_factory=dict, repr=False)
    oauth: OAuthClient | None = None
    tls: ClientTLS | None = None
    #: The secret texts a request may carry (and a receiver echo back): header values and their secrets.
    secrets: tuple[str, ...] = field(default=(), repr=False)

    def headers(self, access_token: str | None = None) -> dict[str, str]:
        """The headers a request carries: the static credential, or ``Authorization: Bearer`` with ``access_token``."""
        if self.oauth is not None and access_token is not None:
            return {"Authorization": f"Bearer {access_token}"}
        return dict(self.static_headers)


def _decrypt(token: str) -> str:
    return crypto.decrypt_secret(token) if token else ""


def credentials_of(auth: ReceiverAuth) -> Credentials:
    """The decrypted runtime view of ``auth``."""
    secrets = {name: _decrypt(getattr(auth, f"encrypted_{name}")) for name in SECRET_FIELDS}
    tls = None
    if auth.client_certificate or auth.ca_bundle:
        tls = ClientTLS(auth.client_certificate, secrets["client_key"], auth.ca_bundle)
    static: dict[str, str] = {}
    oauth = None
    if auth.method == AuthMethod.BASIC:
        pair = f"{auth.username}:{secrets['password']}".encode()
        static = {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}
    elif auth.method == AuthMethod.BEARER:
        static = {"Authorization": f"Bearer {secrets['token']}"}
    elif auth.method == AuthMethod.API_KEY:
        static = {auth.header_name: secrets["token"]}
    elif auth.method == AuthMethod.OAUTH2:
        oauth = OAuthClient(
            receiver_auth_id=auth.pk,
            token_url=auth.token_url,
            client_id=auth.client_id,
            client_auth=auth.client_auth,
            client_secret=secrets["client_secret"],
            private_key=secrets["private_key"],
            key_id=auth.key_id,
            scope=auth.scope,
            audience=auth.audience,
            resource=auth.resource,
            tls=tls,
        )
    texts = (*static.values(), secrets["password"], secrets["token"], secrets["client_secret"])
    if auth.method == AuthMethod.BASIC:
        texts += (static["Authorization"].removeprefix("Basic "),)
    return Credentials(auth.method, auth.updated_at, static, oauth, tls, tuple(text for text in texts if text))


def redact_secrets(text: str, secrets: Iterable[str]) -> str:
    """``text`` with every occurrence of each of ``secrets`` replaced by ``<redacted>``.

    For what a receiver or a token endpoint answered (a body, a header, an error description),
    which may echo the credentials of the request, before it is stored, logged or shown.
    """
    for secret in sorted({s for s in secrets if len(s) >= MIN_REDACTED_LENGTH}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def load_credentials(subscription_ids: Collection[int]) -> dict[int, Credentials]:
    """The credentials of those of ``subscription_ids`` that have any (one query)."""
    if not subscription_ids:
        return {}
    return {
        auth.subscription_id: credentials_of(auth)
        for auth in ReceiverAuth.objects.filter(subscription_id__in=list(subscription_ids))
    }


# -- validation ------------------------------------------------------------------------------------


def _certificates(pem: str) -> list[x509.Certificate]:
    if len(pem) > MAX_PEM_LENGTH:
        raise ValueError(_("At most %(n)d characters of PEM.") % {"n": MAX_PEM_LENGTH})
    try:
        certificates = x509.load_pem_x509_certificates(pem.encode("utf-8"))
    except (ValueError, UnicodeError):
        raise ValueError(_("Not PEM certificates (-----BEGIN CERTIFICATE----- ...).")) from None
    return certificates


def _private_key(pem: str) -> Any:
    if len(pem) > MAX_PEM_LENGTH:
        raise ValueError(_("At most %(n)d characters of PEM.") % {"n": MAX_PEM_LENGTH})
    try:
        key = serialization.load_pem_private_key(pem.encode("utf-8"), password=None)
    except TypeError:
        raise ValueError(_("The private key is encrypted; give it without a passphrase.")) from None
    except (ValueError, UnicodeError):
        raise ValueError(_("Not a PEM private key (-----BEGIN PRIVATE KEY----- ...).")) from None
    except Exception:  # unsupported key types raise cryptography's own errors
        raise ValueError(_("Not a supported private key.")) from None
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < MIN_RSA_BITS:
            raise ValueError(_("RSA keys need at least %(bits)d bits.") % {"bits": MIN_RSA_BITS})
    elif isinstance(key, ec.EllipticCurvePrivateKey):
        if not isinstance(key.curve, ec.SECP256R1 | ec.SECP384R1 | ec.SECP521R1):
            raise ValueError(_("EC keys must be on P-256, P-384 or P-521."))
    elif not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ValueError(_("Use an RSA, EC (P-256, P-384, P-521) or Ed25519 key."))
    return key


def certificate_expiry(pem: str) -> datetime | None:
    """When the first certificate of ``pem`` (the client certificate) expires; None if there is none."""
    if not pem:
        return None
    return _certificates(pem)[0].not_valid_after_utc


def _public_bytes(public_key: Any) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def auth_problems(values: Mapping[str, Any], current: ReceiverAuth | None = None) -> dict[str, list[str]]:
    """What is wrong with these receiver authentication settings, per field (empty when valid).

    ``values`` holds the fields being set (:data:`PLAIN_FIELDS` and :data:`SECRET_FIELDS`); the
    others keep their ``current`` value. A secret is required by a method unless it is given or
    already stored.
    """
    problems: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        problems.setdefault(name, []).append(message)

    merged = {name: str(getattr(current, name, "") or "") for name in PLAIN_FIELDS}
    if current is None:
        merged["method"], merged["client_auth"] = AuthMethod.NONE, OAuthClientAuth.CLIENT_SECRET_BASIC
    merged.update({name: str(values[name] or "") for name in PLAIN_FIELDS if name in values})
    given = {name: str(values[name] or "") for name in SECRET_FIELDS if values.get(name)}

    def has_secret(name: str) -> bool:
        return bool(given.get(name)) or bool(current is not None and getattr(current, f"encrypted_{name}"))

    for name, value in given.items():
        if len(value) > MAX_PEM_LENGTH or (
            name not in ("private_key", "client_key") and len(value) > MAX_SECRET_LENGTH
        ):
            add(name, _("This value is too long."))
        elif unsendable(value) and name in ("password", "token", "client_secret"):
            add(name, _("Line breaks and NUL characters cannot be sent in a header."))
    method = merged["method"]
    if method not in AuthMethod.values:
        add("method", _("Use one of: %(methods)s.") % {"methods": ", ".join(AuthMethod.values)})
        return problems
    if method == AuthMethod.BASIC:
        if not merged["username"]:
            add("username", _("HTTP Basic needs a user name."))
        elif ":" in merged["username"] or unsendable(merged["username"]):
            add("username", _("A user name for HTTP Basic cannot contain a colon or a line break."))
        if not has_secret("password"):
            add("password", _("HTTP Basic needs a password."))
    elif method in (AuthMethod.BEARER, AuthMethod.API_KEY):
        if not has_secret("token"):
            add("token", _("Give the token or API key to send."))
        if method == AuthMethod.API_KEY:
            name = merged["header_name"]
            if not name:
                add("header_name", _("Name the header that carries the API key."))
            elif not HEADER_NAME_RE.fullmatch(name) or len(name) > 100:
                add("header_name", _("%(name)r is not a valid header name.") % {"name": name})
            elif is_protected_header(name):
                add("header_name", _("The header %(name)s is set by django-webhooks.") % {"name": name})
    elif method == AuthMethod.OAUTH2:
        _oauth_problems(merged, given, has_secret, add)
    new_certificate = merged["client_certificate"] != str(getattr(current, "client_certificate", "") or "")
    _tls_problems(merged, given, current, add, new_certificate=new_certificate)
    return problems


def _oauth_problems(merged: dict[str, str], given: dict[str, str], has_secret: Any, add: Any) -> None:
    if not merged["token_url"]:
        add("token_url", _("OAuth2 needs the receiver's token endpoint URL."))
    else:
        try:
            target_validator(merged["token_url"])
        except ValidationError as exc:
            add(
                "token_url",
                _("Tokens cannot be requested from this URL: %(reason)s") % {"reason": " ".join(exc.messages)},
            )
    if not merged["client_id"]:
        add("client_id", _("OAuth2 needs a client id."))
    client_auth = merged["client_auth"]
    if client_auth not in OAuthClientAuth.values:
        add("client_auth", _("Use one of: %(values)s.") % {"values": ", ".join(OAuthClientAuth.values)})
    elif client_auth == OAuthClientAuth.PRIVATE_KEY_JWT:
        if "private_key" in given:
            try:
                _private_key(given["private_key"])
            except ValueError as exc:
                add("private_key", str(exc))
        elif not has_secret("private_key"):
            add("private_key", _("private_key_jwt needs the private key (PEM) that signs the client assertion."))
    elif not has_secret("client_secret"):
        add("client_secret", _("%(method)s needs the client secret.") % {"method": client_auth})


def _tls_problems(
    merged: dict[str, str], given: dict[str, str], current: ReceiverAuth | None, add: Any, *, new_certificate: bool
) -> None:
    certificate_pem, ca_pem = merged["client_certificate"], merged["ca_bundle"]
    certificates: list[x509.Certificate] = []
    if certificate_pem:
        try:
            certificates = _certificates(certificate_pem)
        except ValueError as exc:
            add("client_certificate", str(exc))
    # A stored certificate that has since expired is the check's (W015) to report; a new one must be valid.
    if new_certificate and certificates and certificates[0].not_valid_after_utc <= timezone.now():
        add("client_certificate", _("This certificate has expired; give one that is still valid."))
    if ca_pem:
        try:
            _certificates(ca_pem)
        except ValueError as exc:
            add("ca_bundle", str(exc))
    key = None
    if "client_key" in given:
        try:
            key = _private_key(given["client_key"])
        except ValueError as exc:
            add("client_key", str(exc))
            return
        if not certificate_pem:
            add("client_certificate", _("A client key needs its certificate."))
    elif certificate_pem and not (current is not None and current.encrypted_client_key):
        add("client_key", _("A client certificate needs its private key (PEM)."))
    elif certificate_pem and current is not None and certificates:
        key = _private_key(crypto.decrypt_secret(current.encrypted_client_key))
    if (
        key is not None
        and certificates
        and _public_bytes(key.public_key()) != _public_bytes(certificates[0].public_key())
    ):
        add("client_key", _("This key does not belong to the client certificate (the first one of the PEM)."))


# -- storing ---------------------------------------------------------------------------------------


def configure_auth(subscription: Subscription, **values: Any) -> ReceiverAuth:
    """Set the receiver authentication of ``subscription`` and return it.

    ``values`` holds any of :data:`PLAIN_FIELDS` and :data:`SECRET_FIELDS`; the fields left out
    keep their value, and a secret given replaces the stored one (rotation). Secrets the method
    does not use are removed, and the cached OAuth2 token is dropped. Raises
    ``ValidationError`` with the messages of :func:`auth_problems` per field.
    """
    unknown = set(values) - set(PLAIN_FIELDS) - set(SECRET_FIELDS)
    if unknown:
        raise TypeError(f"Unknown receiver auth fields: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        auth = ReceiverAuth.objects.select_for_update().filter(subscription=subscription).first()
        problems = auth_problems(values, auth)
        if problems:
            raise ValidationError(problems)
        if auth is None:
            auth = ReceiverAuth(subscription=subscription)
        for name in PLAIN_FIELDS:
            if name in values:
                setattr(auth, name, values[name] or "")
        for name in SECRET_FIELDS:
            if values.get(name):
                setattr(auth, f"encrypted_{name}", crypto.encrypt_secret(values[name]))
        _drop_unused(auth)
        auth.client_certificate_expires_at = certificate_expiry(auth.client_certificate)
        auth.updated_at = timezone.now()
        auth.save()
        OAuthToken.objects.filter(receiver_auth=auth).delete()
    return auth


def _drop_unused(auth: ReceiverAuth) -> None:
    method = AuthMethod(auth.method)
    used = set(_METHOD_SECRETS[method])
    if method == AuthMethod.OAUTH2:
        used.discard("private_key" if auth.client_auth != OAuthClientAuth.PRIVATE_KEY_JWT else "client_secret")
    if auth.client_certificate:
        used.add("client_key")
    for name in SECRET_FIELDS:
        if name not in used:
            setattr(auth, f"encrypted_{name}", "")
    kept = set(_METHOD_FIELDS[method])
    for name in ("username", "header_name", "token_url", "client_id", "key_id", "scope", "audience", "resource"):
        if name not in kept:
            setattr(auth, name, "")


# -- describing (admin, API): never a secret --------------------------------------------------------


def describe_auth(auth: ReceiverAuth | None) -> dict[str, Any]:
    """The settings of ``auth`` as the admin and the API show them: which secrets are set, never their values."""
    if auth is None:
        auth = ReceiverAuth()  # the defaults: no authentication
    described: dict[str, Any] = {name: getattr(auth, name) for name in PLAIN_FIELDS if name != "client_certificate"}
    described["client_certificate"] = auth.client_certificate
    described["mutual_tls"] = bool(auth.client_certificate)
    described["client_certificate_expires_at"] = auth.client_certificate_expires_at
    described["secrets_set"] = [name for name in SECRET_FIELDS if getattr(auth, f"encrypted_{name}")]
    described["updated_at"] = auth.updated_at
    return described


def reencrypt_receiver_secrets() -> int:
    """Re-encrypt every stored receiver secret and cached token with the newest encryption key; return how many rows."""
    count = 0
    for auth in ReceiverAuth.objects.all():
        for name in SECRET_FIELDS:
            stored = getattr(auth, f"encrypted_{name}")
            if stored:
                setattr(auth, f"encrypted_{name}", crypto.reencrypt_secret(stored))
        auth.save(update_fields=[f"encrypted_{name}" for name in SECRET_FIELDS])
        count += 1
    for token in OAuthToken.objects.all():
        token.encrypted = crypto.reencrypt_secret(token.encrypted)
        token.save(update_fields=["encrypted"])
        count += 1
    return count
