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
    """At most one requestSync per user per window beyond the first (see functions/request_sync/service.py)."""
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


def account_linking_logo() -> str:
    """The pages' logo: a file shipped with the deployment (path from the repository root) or an https URL; empty:
    none (functions/linking/branding.py)."""
    return os.environ.get("ACCOUNT_LINKING_LOGO", "")


def account_linking_accent_color() -> str:
    """#rrggbb of the pages' buttons and focus rings."""
    return os.environ.get("ACCOUNT_LINKING_ACCENT_COLOR", "#1a73e8")


def account_linking_privacy_url() -> str:
    """The privacy policy the pages link to (https); empty: no link."""
    return os.environ.get("ACCOUNT_LINKING_PRIVACY_URL", "")


def account_linking_terms_url() -> str:
    """The terms of service the pages link to (https); empty: no link."""
    return os.environ.get("ACCOUNT_LINKING_TERMS_URL", "")


def account_linking_support_url() -> str:
    """Where the pages send people for help (https or mailto:); empty: no link."""
    return os.environ.get("ACCOUNT_LINKING_SUPPORT_URL", "")


def account_linking_password_reset_url() -> str:
    """The sign-in page's "Forgot your password?" link (https); empty: no link."""
    return os.environ.get("ACCOUNT_LINKING_PASSWORD_RESET_URL", "")


def account_linking_default_language() -> str:
    """The pages' language when the browser asks for none they have (a catalogue of functions/linking/translations)."""
    return os.environ.get("ACCOUNT_LINKING_DEFAULT_LANGUAGE", "en")


def account_linking_client_ip_hop() -> int:
    """Which X-Forwarded-For entry, counted from the right, is the client's IP as the trusted front end saw it (1:
    the last, which Cloud Run's front end appends); 0: ignore the header (sign-in throttling per client IP)."""
    raw = os.environ.get("ACCOUNT_LINKING_CLIENT_IP_HOP", "1")
    try:
        hop = int(raw)
    except ValueError:
        raise ValueError(f"ACCOUNT_LINKING_CLIENT_IP_HOP={raw!r} is not a whole number") from None
    if hop < 0:
        raise ValueError("ACCOUNT_LINKING_CLIENT_IP_HOP must not be negative")
    return hop


# Report State, notifications and follow-ups (functions/reporting/pipeline.py, functions/core/commands.py)


def _non_negative(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise ValueError(f"{name}={raw!r} is not a number") from None
    if value < 0:
        raise ValueError(f"{name} must not be negative")
    return value


def state_topic() -> str:
    """The topic device clouds publish state messages on (the Report State function's trigger)."""
    return os.environ.get("STATE_TOPIC", "device-state")


def rejected_topic() -> str:
    """Where state messages that were not applied in full go, with the reason (for the device cloud)."""
    return os.environ.get("REJECTED_TOPIC", "device-state-rejected")


def commands_topic() -> str:
    """The topic commands for "pubsub"-backed devices go to, for the maker's device cloud."""
    return os.environ.get("COMMANDS_TOPIC", "device-commands")


def pubsub_available() -> bool:
    """False while Firestore is emulated without a Pub/Sub emulator: nothing is published to production then."""
    return not (os.environ.get("FIRESTORE_EMULATOR_HOST") and not os.environ.get("PUBSUB_EMULATOR_HOST"))


def report_window_ms() -> int:
    """How long a user's state changes are gathered into one Report State call."""
    return int(_non_negative("REPORT_WINDOW_MS", 500))


def report_wait_budget_s() -> float:
    """How long an invocation waits for its change to be reported before it fails (keep under the timeout)."""
    return _non_negative("REPORT_WAIT_BUDGET_S", 90.0)


def report_max_message_age_s() -> float:
    """State messages (and device-change events) older than this are dropped with a log line."""
    return _non_negative("REPORT_MAX_MESSAGE_AGE_S", 3600.0)


def initial_report_delay_s() -> float:
    """How long after a SYNC the full report of the user's devices waits (Google must process the SYNC first)."""
    return _non_negative("INITIAL_REPORT_DELAY_S", 60.0)


def virtual_device_delay_ms() -> int:
    """How long a virtual device takes to complete a command that answers PENDING (to exercise follow-ups)."""
    return int(_non_negative("VIRTUAL_DEVICE_DELAY_MS", 0))


# Device clouds: pending commands nobody completes, and the "webhook" backend (functions/fulfillment/webhook.py)


def pending_timeout_s() -> float:
    """How long after it was issued a pending command nobody completed is given up (Google gets a FAILURE)."""
    return _positive_number("PENDING_TIMEOUT_S", 300.0)


def webhook_url() -> str:
    """The maker's HTTPS endpoint that "webhook" devices' commands are POSTed to (empty: there is none)."""
    return os.environ.get("WEBHOOK_URL", "")


def webhook_secret() -> str:
    """Signs every webhook call (HMAC-SHA256); from Secret Manager, shared with the maker."""
    return os.environ.get("WEBHOOK_SECRET", "")


def webhook_timeout_s() -> float:
    """How long a webhook call may take: EXECUTE must answer Google well inside its deadline."""
    return _positive_number("WEBHOOK_TIMEOUT_S", 3.0)
