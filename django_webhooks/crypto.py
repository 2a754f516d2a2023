"""Encryption at rest for signing secrets (Fernet: AES-128-CBC + HMAC-SHA256).

Keys come from ``DJANGO_WEBHOOKS["ENCRYPTION_KEYS"]``, newest first: the first encrypts, every
key decrypts. An entry is either a Fernet key (``Fernet.generate_key()``) or any other string,
from which a Fernet key is derived with HKDF-SHA256. When the setting is empty, keys are derived
from ``SECRET_KEY`` (encrypting) and ``SECRET_KEY_FALLBACKS`` (decrypting too). Because the
derivation is the same, moving from the default to explicit keys means listing the old
``SECRET_KEY`` as the last entry until ``secret_store.reencrypt_secrets()`` has run.

Settings are read on every call; the derived ciphers are cached by key material only.
"""

from __future__ import annotations

import base64
import binascii
from functools import lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings

from .conf import SETTING_NAME, webhooks_settings
from .exceptions import SecretDecryptionError, WebhooksConfigurationError

KDF_SALT = b"django-webhooks"
KDF_INFO = b"django-webhooks signing secret encryption v1"

KeyMaterial = str | bytes

ENCRYPTION_KEYS_SETTING = f'{SETTING_NAME}["ENCRYPTION_KEYS"]'


def encryption_keys_problem(value: Any) -> str | None:
    """What is wrong with an ``ENCRYPTION_KEYS`` value, or None when it is valid: a list (newest
    first) of non-empty strings or bytes; empty derives the keys from ``SECRET_KEY``.

    The system check E012 reports this message; :func:`key_materials` raises it.
    """
    if isinstance(value, list | tuple) and all(isinstance(key, str | bytes) and key for key in value):
        return None
    # Never the value itself: it holds key material.
    return f"{ENCRYPTION_KEYS_SETTING} must be a list of non-empty strings (newest first)."


def fernet_key(material: KeyMaterial) -> bytes:
    """A Fernet key for ``material``: itself if it already is one, else derived with HKDF-SHA256."""
    raw = material.encode("utf-8") if isinstance(material, str) else bytes(material)
    try:
        if len(base64.urlsafe_b64decode(raw)) == 32 and len(raw) == 44:
            return raw
    except (binascii.Error, ValueError):
        pass
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=KDF_SALT, info=KDF_INFO).derive(raw)
    return base64.urlsafe_b64encode(derived)


def key_materials() -> tuple[tuple[KeyMaterial, ...], str]:
    """The configured key materials (newest first) and the name of the setting they come from."""
    configured = webhooks_settings.ENCRYPTION_KEYS
    setting = ENCRYPTION_KEYS_SETTING
    problem = encryption_keys_problem(configured)
    if problem:
        raise WebhooksConfigurationError(problem)
    if configured:
        return tuple(configured), setting
    fallbacks = tuple(key for key in getattr(settings, "SECRET_KEY_FALLBACKS", ()) if key)
    if not settings.SECRET_KEY:
        raise WebhooksConfigurationError(f"Set {setting} or SECRET_KEY to encrypt webhook signing secrets.")
    return (settings.SECRET_KEY, *fallbacks), f"{setting} (empty, so SECRET_KEY and SECRET_KEY_FALLBACKS)"


@lru_cache(maxsize=16)
def _cipher(materials: tuple[KeyMaterial, ...]) -> MultiFernet:
    return MultiFernet([Fernet(fernet_key(material)) for material in materials])


def cipher() -> MultiFernet:
    """The ``MultiFernet`` for the current settings."""
    return _cipher(key_materials()[0])


def encrypt_secret(plain: str) -> str:
    """Encrypt a signing secret with the newest key."""
    return cipher().encrypt(plain.encode("utf-8")).decode("ascii")


def decrypt_secret(token: str) -> str:
    """Decrypt a stored signing secret with any configured key.

    Raises :class:`SecretDecryptionError` naming the setting when no key fits.
    """
    materials, setting = key_materials()
    try:
        return _cipher(materials).decrypt(token.encode("ascii")).decode("utf-8")
    except (InvalidToken, UnicodeError, AttributeError):
        raise _no_key_fits(setting) from None


def reencrypt_secret(token: str) -> str:
    """``token`` re-encrypted with the newest key (after adding a key to ``ENCRYPTION_KEYS``)."""
    materials, setting = key_materials()
    try:
        return _cipher(materials).rotate(token.encode("ascii")).decode("ascii")
    except (InvalidToken, UnicodeError, AttributeError):
        raise _no_key_fits(setting) from None


def _no_key_fits(setting: str) -> SecretDecryptionError:
    return SecretDecryptionError(
        f"A stored webhook signing secret cannot be decrypted with any key in {setting}. "
        "Add the key it was encrypted with (for example the previous SECRET_KEY) to the setting."
    )
