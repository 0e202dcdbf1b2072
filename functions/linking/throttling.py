"""Sign-in throttling: counters that hold back guessing without letting anyone lock the owner out.

Four counters, each per fixed window (`Limit.window_s`), kept by an `AttemptCounters` store with atomic increments
(no transaction, so concurrent sign-ins never contend):

    ip          every attempt from one client IP (an IPv6 client's /64), whatever the account: bounds the password
                checks one client can make, across any number of e-mail addresses;
    account-ip  failures on one account from one client IP: the guesser is held back, the owner elsewhere is not;
    account     failures on one account from browsers that have not signed in to it before: a guesser spread over
                many IPs is held back too;
    device      failures through one device cookie: a browser that has signed in to the account before (OWASP's
                "device cookies") is only held back by its own failures, never by anyone else's.

A browser with a valid device cookie for the account counts on `device` only; any other browser counts on `ip`,
`account-ip` and `account`, in that order, and stops at the first that is full (so that a client held back by its IP
adds nothing to the account's counters). Failures are counted before the password is checked (so concurrent guesses
cannot overtake the count) and given back when it was right. Unknown e-mail addresses are counted exactly like known
ones: the answers say nothing about which accounts exist.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from typing import Protocol

IP = "ip"
ACCOUNT_IP = "account-ip"
ACCOUNT = "account"
DEVICE = "device"
# What an address that cannot be read counts as: one shared client, so that garbage buys no fresh limits.
UNKNOWN_CLIENT = "unknown"


@dataclass(frozen=True)
class Limit:
    scope: str
    max_count: int
    window_s: int


@dataclass(frozen=True)
class Limits:
    ip: Limit = Limit(IP, 30, 15 * 60)
    account_ip: Limit = Limit(ACCOUNT_IP, 5, 15 * 60)
    account: Limit = Limit(ACCOUNT, 20, 15 * 60)
    device: Limit = Limit(DEVICE, 10, 15 * 60)


DEFAULT_LIMITS = Limits()


@dataclass(frozen=True)
class Counter:
    """One counter in one window. `key` is a hash: no e-mail address or IP is stored in clear."""

    scope: str
    key: str
    window_start_ms: int
    window_end_ms: int
    account_key: str | None = None  # set on the account's counters, so that an operator can clear them

    @property
    def document_id(self) -> str:
        return f"{self.scope}-{self.key}-{self.window_start_ms // 1000}"


def counter(limit: Limit, material: str, now_ms: int, account_key: str | None = None) -> Counter:
    window_ms = limit.window_s * 1000
    start = now_ms - now_ms % window_ms
    key = hashlib.sha256(f"{limit.scope}:{material}".encode()).hexdigest()[:40]
    return Counter(limit.scope, key, start, start + window_ms, account_key)


class AttemptCounters(Protocol):
    def add(self, counter: Counter, delta: int) -> int:
        """Adds `delta` to the counter atomically (creating it at 0) and returns its new value."""
        ...

    def delete(self, counter: Counter) -> None: ...

    def clear_account(self, account_key: str) -> int:
        """Deletes every counter of the account (all windows); returns how many. For operators (`users unlock`)."""
        ...


def client_key(address: str) -> str:
    """What one client is: the address, or its /64 for IPv6 (one subscriber's share); unreadable ones are one."""
    try:
        parsed = ipaddress.ip_address(address.strip())
    except ValueError:
        return UNKNOWN_CLIENT
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network(f"{parsed}/64", strict=False))
    return str(parsed)


def forwarded_client(forwarded_for: str, remote_address: str, trusted_hop: int) -> str:
    """The client's IP: the `trusted_hop`-th X-Forwarded-For entry from the right, which the trusted front end added
    (1: the last entry, as Cloud Run's front end appends the address it saw). Entries to its left are the client's
    own say and never trusted; 0 ignores the header and takes the connection's address."""
    if trusted_hop <= 0:
        return remote_address
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    return hops[-trusted_hop] if len(hops) >= trusted_hop else remote_address


def retry_after_s(counter: Counter, now_ms: int) -> int:
    return max(1, -(-(counter.window_end_ms - now_ms) // 1000))
