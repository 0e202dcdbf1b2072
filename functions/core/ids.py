"""Which strings can name a document: device ids and agent user ids become Firestore document ids."""

from __future__ import annotations

from typing import Any

# Google's documented limit for a device id (SYNC reference: "id ... max 1,024 characters"); Firestore ids are
# at most 1,500 bytes, cannot contain '/', be '.' or '..', or look like __name__.
MAX_ID_LENGTH = 1024


def id_problem(value: Any, what: str = "id") -> str | None:
    """Why `value` cannot be a document id, or None if it can."""
    if not isinstance(value, str) or not value:
        return f"{what}: must be a non-empty string"
    if len(value.encode("utf-8", "surrogatepass")) > MAX_ID_LENGTH:
        return f"{what}: longer than {MAX_ID_LENGTH} bytes"
    if "/" in value or value in {".", ".."} or (value.startswith("__") and value.endswith("__")):
        return f"{what}: may not contain '/', be '.' or '..', or look like __name__"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return f"{what}: must be valid Unicode text"
    return None
