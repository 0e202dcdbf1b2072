"""Refusals reach the device cloud: every state message that is not applied in full goes to the rejection topic.

The rejected message is the original data, unchanged (also when it could not be decoded), with the attributes
`reason` (the human-readable reason), `messageId` (the original's) and `agentUserId` / `deviceId` where known, so
the publisher can see what went wrong and replay a corrected message. Pub/Sub caps an attribute value at 1024
bytes: a longer reason is cut there, ending with "…". A rejection that cannot be published fails the invocation,
so the original is delivered again rather than dropped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from functions.core.commands import Publisher, PublishingUnavailable

log = logging.getLogger(__name__)

MAX_ATTRIBUTE_BYTES = 1024
REASON = "reason"
MESSAGE_ID = "messageId"
AGENT_USER_ID = "agentUserId"
DEVICE_ID = "deviceId"


def fit_attribute(value: str) -> str:
    """`value` cut to Pub/Sub's 1024 bytes (UTF-8), on a character boundary."""
    encoded = value.encode()
    if len(encoded) <= MAX_ATTRIBUTE_BYTES:
        return value
    ellipsis = "…"
    room = MAX_ATTRIBUTE_BYTES - len(ellipsis.encode())
    return encoded[:room].decode(errors="ignore") + ellipsis


class Rejections:
    def __init__(self, publisher: Callable[[], Publisher], topic: Callable[[], str]) -> None:
        self._publisher = publisher  # built on first use
        self._topic = topic

    def reject(
        self,
        data: bytes,
        message_id: str,
        reason: str,
        agent_user_id: str | None = None,
        device_id: str | None = None,
    ) -> None:
        attributes = {REASON: fit_attribute(reason or "refused"), MESSAGE_ID: fit_attribute(message_id)}
        if agent_user_id:
            attributes[AGENT_USER_ID] = fit_attribute(agent_user_id)
        if device_id:
            attributes[DEVICE_ID] = fit_attribute(device_id)
        topic = self._topic()
        try:
            self._publisher().publish(topic, data, attributes)
        except PublishingUnavailable as unavailable:
            # Only where there is no Pub/Sub at all (tests of other parts): the log line is all there is.
            log.warning(
                "no Pub/Sub here: the rejection is only logged",
                extra={"messageId": message_id, "reason": reason[:1000], "why": str(unavailable)},
            )
            return
        log.info(
            "state message rejected",
            extra={
                "messageId": message_id,
                "topic": topic,
                "agentUserId": agent_user_id,
                "deviceId": device_id,
                "reason": reason[:1000],
            },
        )
