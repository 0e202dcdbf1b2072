"""Settings read from the environment, in one place (infra sets each of them)."""

from __future__ import annotations

import os

DEFAULT_PROJECT = "demo-smart-home"


def project_id() -> str | None:
    """The Google Cloud project; the emulators need one, production may leave it to the credentials."""
    project = os.environ.get("GOOGLE_CLOUD_PROJECT") or os.environ.get("GCLOUD_PROJECT")
    if project:
        return project
    if os.environ.get("FIRESTORE_EMULATOR_HOST") or os.environ.get("PUBSUB_EMULATOR_HOST"):
        return DEFAULT_PROJECT
    return None


def firestore_database() -> str:
    return os.environ.get("FIRESTORE_DATABASE", "(default)")


def token_cache_seconds() -> int:
    """How long an instance trusts a validated access token before reading its record again (0: never)."""
    return int(os.environ.get("TOKEN_CACHE_SECONDS", "10"))


def challenge_lockout_seconds() -> int:
    """How long a device refuses PINs after 5 wrong ones in a row (two-factor challenges)."""
    return int(os.environ.get("CHALLENGE_LOCKOUT_SECONDS", "900"))


def _positive_number(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive")
    return value


def homegraph_endpoint() -> str | None:
    """A HomeGraph stand-in's URL (local stack, tests): calls go there with anonymous credentials. Unset in
    production: Google's endpoint with Application Default Credentials (homegraph scope)."""
    return os.environ.get("HOMEGRAPH_ENDPOINT") or None


def homegraph_timeout_s() -> float:
    return _positive_number("HOMEGRAPH_TIMEOUT_S", 10.0)


def homegraph_retry() -> tuple[int, float, float]:
    """(attempts, base seconds, cap seconds) of the HomeGraph client's retries of transient errors."""
    attempts = int(_positive_number("HOMEGRAPH_RETRY_ATTEMPTS", 4))
    return attempts, _positive_number("HOMEGRAPH_RETRY_BASE_S", 0.5), _positive_number("HOMEGRAPH_RETRY_CAP_S", 8.0)


def request_sync_window_s() -> float:
    """At most one requestSync per user per window beyond the first (see functions/domain/request_sync.py)."""
    return _positive_number("REQUEST_SYNC_WINDOW_S", 5.0)


def request_sync_max_event_age_s() -> float:
    """Device-change events older than this are dropped (logged), so redeliveries cannot go on for ever."""
    return _positive_number("REQUEST_SYNC_MAX_EVENT_AGE_S", 3600.0)


def request_sync_owner_budget_s() -> float:
    """How long one invocation keeps coalescing a user's changes before it hands over (keep under the timeout)."""
    return _positive_number("REQUEST_SYNC_OWNER_BUDGET_S", 120.0)


def account_linking_service_name() -> str:
    """What the sign-in and consent pages call the maker's service."""
    return os.environ.get("ACCOUNT_LINKING_SERVICE_NAME", "Smart Home")


def account_linking_session_key() -> str:
    """Signs the sign-in pages' cookies and CSRF tokens; from Secret Manager, required outside the emulator."""
    return os.environ.get("ACCOUNT_LINKING_SESSION_KEY", "")


def account_linking_user_directory() -> str:
    """`module:factory` making the UserDirectory users sign in with; empty: accounts in Firestore (argon2)."""
    return os.environ.get("ACCOUNT_LINKING_USER_DIRECTORY", "")
