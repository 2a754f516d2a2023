"""The test authorization server's views: counted token endpoint, protected receiver, stats, revocation."""

from __future__ import annotations

import json
import os
import threading

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from jwcrypto import jwk, jwt
from oauth2_provider.models import AccessToken
from oauth2_provider.oauth2_backends import OAuthLibCore
from oauth2_provider.oauth2_validators import OAuth2Validator

JWT_BEARER = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

_lock = threading.Lock()
_state: dict[str, list] = {"token_requests": [], "hooks": [], "refused": [], "assertions": []}


def _record(kind: str, entry: object) -> None:
    with _lock:
        _state[kind].append(entry)


class AssertionValidator(OAuth2Validator):
    """DOT's validator, plus ``private_key_jwt`` client authentication (RFC 7523 section 2.2),
    verified with jwcrypto against the public key in ``OAUTH_JWT_PUBLIC_KEY``."""

    def authenticate_client(self, request, *args, **kwargs):
        params = dict(request.decoded_body or ())
        if params.get("client_assertion_type") != JWT_BEARER:
            return super().authenticate_client(request, *args, **kwargs)
        public_pem = os.environ.get("OAUTH_JWT_PUBLIC_KEY", "")
        client_id = params.get("client_id", "")
        # The token endpoint's own URL: the assertion's audience (DOT passes the path, and the WSGI environ as headers).
        token_url = f"http://{request.headers.get('HTTP_HOST', '')}{request.uri}"
        try:
            key = jwk.JWK.from_pem(public_pem.encode())
            token = jwt.JWT(
                jwt=params.get("client_assertion", ""),
                key=key,
                check_claims={"iss": client_id, "sub": client_id, "aud": token_url, "exp": None, "jti": None},
            )
        except Exception as exc:  # any failure is a refused client
            _record("assertions", {"valid": False, "error": f"{type(exc).__name__}: {exc}"})
            return False
        header = json.loads(token.header)
        _record("assertions", {"valid": True, "kid": header.get("kid"), "alg": header.get("alg")})
        return self._load_application(client_id, request) is not None


def counted(view):
    @csrf_exempt
    def wrapper(request: HttpRequest) -> HttpResponse:
        response = view(request)
        _record("token_requests", {"status": response.status_code, "form": sorted(request.POST)})
        return response

    return wrapper


@csrf_exempt
def hook(request: HttpRequest) -> HttpResponse:
    """A webhook receiver that accepts only valid access tokens of this server."""
    valid, _oauth_request = OAuthLibCore().verify_request(request, scopes=["webhooks"])
    token = request.headers.get("Authorization", "").removeprefix("Bearer ")
    if not valid:
        _record("refused", {"token": token})
        return HttpResponse(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
    _record("hooks", {"token": token, "body": request.body.decode(), "webhook_id": request.headers.get("webhook-id")})
    return HttpResponse(status=204)


def stats(request: HttpRequest) -> JsonResponse:
    with _lock:
        return JsonResponse({name: list(entries) for name, entries in _state.items()})


@csrf_exempt
def revoke(request: HttpRequest) -> JsonResponse:
    revoked, _ = AccessToken.objects.all().delete()
    return JsonResponse({"revoked": revoked})
