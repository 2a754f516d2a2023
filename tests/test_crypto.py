from __future__ import annotations

import logging

import pytest
from cryptography.fernet import Fernet
from django.test import override_settings

from django_webhooks.crypto import (
    decrypt_secret,
    encrypt_secret,
    encryption_keys_problem,
    fernet_key,
    reencrypt_secret,
)
from django_webhooks.exceptions import SecretDecryptionError, WebhooksConfigurationError
from django_webhooks.signing import generate_secret

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def keys(*values):
    return override_settings(DJANGO_WEBHOOKS={"ENCRYPTION_KEYS": list(values)})


def test_round_trip_with_the_default_key_from_secret_key():
    token = encrypt_secret(SECRET)
    assert SECRET not in token and SECRET.removeprefix("whsec_") not in token
    assert decrypt_secret(token) == SECRET
    assert encrypt_secret(SECRET) != token


def test_fernet_keys_are_used_as_is_and_strings_are_derived():
    fernet = Fernet.generate_key().decode()
    with keys(fernet):
        token = encrypt_secret(SECRET)
    assert Fernet(fernet).decrypt(token.encode()).decode() == SECRET

    with keys("a passphrase, not a Fernet key"):
        token = encrypt_secret(SECRET)
        assert decrypt_secret(token) == SECRET
    assert fernet_key("a passphrase, not a Fernet key") != fernet_key("another passphrase")
    with keys("another passphrase"), pytest.raises(SecretDecryptionError):
        decrypt_secret(token)


def test_settings_are_read_on_every_call():
    with keys("key one"):
        token = encrypt_secret(SECRET)
    with keys("key two"), pytest.raises(SecretDecryptionError, match=r'DJANGO_WEBHOOKS\["ENCRYPTION_KEYS"\]'):
        decrypt_secret(token)
    with keys("key one"):
        assert decrypt_secret(token) == SECRET


def test_key_rotation_newest_first():
    with keys("old key"):
        old_token = encrypt_secret(SECRET)
    with keys("new key", "old key"):
        assert decrypt_secret(old_token) == SECRET
        new_token = reencrypt_secret(old_token)
        assert decrypt_secret(new_token) == SECRET
    with keys("new key"):
        assert decrypt_secret(new_token) == SECRET
        with pytest.raises(SecretDecryptionError):
            decrypt_secret(old_token)


def test_secret_key_fallbacks_decrypt_after_a_secret_key_change(settings):
    settings.SECRET_KEY = "the-old-django-secret-key-" + "x" * 40
    token = encrypt_secret(SECRET)
    settings.SECRET_KEY = "the-new-django-secret-key-" + "y" * 40
    with pytest.raises(SecretDecryptionError, match="SECRET_KEY_FALLBACKS"):
        decrypt_secret(token)
    settings.SECRET_KEY_FALLBACKS = ["the-old-django-secret-key-" + "x" * 40]
    assert decrypt_secret(token) == SECRET
    assert decrypt_secret(reencrypt_secret(token)) == SECRET


def test_moving_from_secret_key_to_explicit_keys(settings):
    token = encrypt_secret(SECRET)
    with keys(Fernet.generate_key().decode(), settings.SECRET_KEY):
        assert decrypt_secret(token) == SECRET


def test_errors_do_not_reveal_the_secret_or_the_token(caplog):
    caplog.set_level(logging.DEBUG)
    secret = generate_secret()
    with keys("key one"):
        token = encrypt_secret(secret)
    with keys("key two"), pytest.raises(SecretDecryptionError) as excinfo:
        decrypt_secret(token)
    assert secret not in str(excinfo.value) and token not in str(excinfo.value)
    assert excinfo.value.__cause__ is None and excinfo.value.__suppress_context__
    assert secret not in caplog.text
    with pytest.raises(SecretDecryptionError):
        decrypt_secret("not a fernet token")


@pytest.mark.parametrize("value", ["a single string", ["ok", ""], [None]])
def test_malformed_setting_is_a_configuration_error(value):
    with (
        override_settings(DJANGO_WEBHOOKS={"ENCRYPTION_KEYS": value}),
        pytest.raises(WebhooksConfigurationError, match="ENCRYPTION_KEYS") as info,
    ):
        encrypt_secret(SECRET)
    assert str(info.value) == encryption_keys_problem(value)
    assert "a single string" not in str(info.value)  # key material is never echoed


def test_valid_encryption_keys():
    assert encryption_keys_problem([]) is None
    assert encryption_keys_problem(["new", b"old"]) is None
    assert encryption_keys_problem((Fernet.generate_key(),)) is None
