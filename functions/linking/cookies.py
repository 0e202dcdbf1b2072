"""The sign-in pages' cookies: the CSRF value, the sign-in session, and the device cookie.

Served over HTTPS their names carry the `__Host-` prefix (Secure, Path=/, no Domain: no other host or path can set
them); plain http (the loopback, in tests) drops the prefix, which browsers would refuse there. All are HttpOnly and
SameSite=Lax.

- CSRF: a random value; every form carries its HMAC under the session key.
- Session: the random secret of a server-side sign-in session (functions.linking.model.SignInSession): single use,
  bound to one authorization request, ended by the consent step.
- Device: one entry per account this browser signed in to (OWASP's device cookies), each `id.expiry.mac` with the
  MAC binding the account: it names no account, and only proves one when the e-mail address typed matches.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time

from flask import Request, Response

from functions.linking.model import SESSION_TTL_S  # the cookie lives as long as the session it names

CSRF = "linking_csrf"
SESSION = "linking_session"
DEVICE = "linking_device"
SECURE_PREFIX = "__Host-"
DEVICE_TTL_S = 180 * 24 * 3600
MAX_DEVICE_ENTRIES = 5  # a shared tablet in a household: a few accounts, newest kept


def mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"{purpose}:{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


class Browser:
    def __init__(self, request: Request, key: bytes, secure: bool) -> None:
        self._key = key
        self._secure = secure
        self._prefix = SECURE_PREFIX if secure else ""
        cookie = request.cookies.get(self.name(CSRF), "")
        self._new_csrf = not (16 <= len(cookie) <= 64 and cookie.isascii())
        self._csrf = secrets.token_urlsafe(24) if self._new_csrf else cookie
        session = request.cookies.get(self.name(SESSION), "")
        self.session_secret = session if len(session) <= 128 and session.isascii() else ""
        self._session_change: str | None = None  # "" deletes
        self._devices = [
            entry for entry in request.cookies.get(self.name(DEVICE), "").split("~") if entry.count(".") == 2
        ][:MAX_DEVICE_ENTRIES]
        self._devices_changed = False

    def name(self, cookie: str) -> str:
        return self._prefix + cookie

    # CSRF

    @property
    def csrf_token(self) -> str:
        return mac(self._key, "csrf", self._csrf)

    def csrf_valid(self, submitted: str | None) -> bool:
        expected = self.csrf_token.encode()
        return not self._new_csrf and bool(submitted) and hmac.compare_digest(expected, (submitted or "").encode())

    # the sign-in session

    def start_session(self, secret: str) -> None:
        self._session_change = secret

    def end_session(self) -> None:
        self._session_change = ""

    # device cookies

    def trusted_device(self, account_key: str) -> str | None:
        """The id of this browser's unexpired device entry for the account, if it has one."""
        now = int(time.time())
        for entry in self._devices:
            device, expires, signature = entry.split(".")
            expected = mac(self._key, "device", f"{account_key}.{device}.{expires}")
            if hmac.compare_digest(expected.encode(), signature.encode()) and expires.isdigit() and int(expires) > now:
                return device
        return None

    def remember_device(self, account_key: str) -> None:
        """After a successful sign-in: the account's entry, renewed (its id kept, and with it its failure count)."""
        device = self.trusted_device(account_key) or secrets.token_urlsafe(16)
        expires = str(int(time.time()) + DEVICE_TTL_S)
        entry = f"{device}.{expires}.{mac(self._key, 'device', f'{account_key}.{device}.{expires}')}"
        others = [kept for kept in self._devices if kept.split(".")[0] != device]
        self._devices = [entry, *others][:MAX_DEVICE_ENTRIES]
        self._devices_changed = True

    def apply(self, response: Response) -> Response:
        cookie = {"path": "/", "secure": self._secure, "httponly": True, "samesite": "Lax"}
        if self._new_csrf:
            response.set_cookie(self.name(CSRF), self._csrf, **cookie)  # type: ignore[arg-type]
        if self._session_change == "":
            response.delete_cookie(self.name(SESSION), **cookie)  # type: ignore[arg-type]
        elif self._session_change is not None:
            response.set_cookie(self.name(SESSION), self._session_change, max_age=SESSION_TTL_S, **cookie)  # type: ignore[arg-type]
        if self._devices_changed:
            value = "~".join(self._devices)
            response.set_cookie(self.name(DEVICE), value, max_age=DEVICE_TTL_S, **cookie)  # type: ignore[arg-type]
        return response
