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
