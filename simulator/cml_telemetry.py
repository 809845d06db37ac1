"""A simulated CML server's telemetry: `GET /telemetry/events` answers the whole event history
on every call, as CML does, and `GET /users/{username}/id` the id its events carry.

Events are `{"category", "timestamp", "data": {"user_id", ...}}`; timestamps come in the ISO
forms CML has used (with and without a fraction, `Z`, or an offset). Every sign-in of the
product's account is recorded as `user_activity` under its own user id, so the monitor's own
polling is always in the history; the `activity` knob adds other users' work:

- "active": every read of the events first records a node start by another user, now;
- "idle": nobody else does anything;
- None (the default): other users act now and then as the fleet drifts (the demo).
"""

import uuid
from datetime import UTC, datetime, timedelta
from itertools import cycle
from random import Random
from typing import Any

LAB_CATEGORIES = ("start_lab", "stop_lab", "wipe_lab", "import_lab", "export_lab")
NODE_CATEGORIES = ("start_node", "stop_node", "queue_node", "boot_node")
NOISE_CATEGORIES = ("system_stats", "feature_usage", "node_definition_usage")
OTHER_USERS = ("jdoe", "rsmith")
HISTORY_LIMIT = 5_000  # oldest events are forgotten past this, as a real server rotates logs
DRIFT_ACTIVITY_CHANCE = 0.04  # per drift step and worker, with the `activity` knob unset


def user_id(username: str) -> str:
    """A stable id per user name, the same on every simulated worker."""
    return str(uuid.uuid5(uuid.NAMESPACE_DNS, f"cml-user:{username}"))


class Telemetry:
    """One worker's event history."""

    def __init__(self, rng: Random, *, own_username: str) -> None:
        self.events: list[dict[str, Any]] = []
        self.own_username = own_username
        self._rng = rng
        self._forms = cycle((_with_fraction_z, _plain_z, _naive, _with_offset))
        now = datetime.now(UTC)
        for hours_ago in sorted(rng.sample(range(3, 72), 6), reverse=True):
            moment = now - timedelta(hours=hours_ago, minutes=rng.randint(0, 59))
            self.record(
                rng.choice(LAB_CATEGORIES + NODE_CATEGORIES), rng.choice(OTHER_USERS), moment
            )
            self.record(rng.choice(NOISE_CATEGORIES), None, moment + timedelta(seconds=5))

    def record(self, category: str, username: str | None, moment: datetime | None = None) -> None:
        moment = moment or datetime.now(UTC)
        data: dict[str, Any] = {}
        if username is not None:
            data["user_id"] = user_id(username)
        if category in LAB_CATEGORIES or category in NODE_CATEGORIES:
            data["lab_id"] = str(uuid.UUID(int=self._rng.getrandbits(128), version=4))
        self.events.append(
            {"category": category, "timestamp": next(self._forms)(moment), "data": data}
        )
        del self.events[:-HISTORY_LIMIT]

    def signed_in(self) -> None:
        """The product's account signed in: CML records it as that user's activity."""
        self.record("user_activity", self.own_username)

    def someone_works(self) -> None:
        """Another user starts a node, now."""
        self.record(self._rng.choice(NODE_CATEGORIES[:1] + LAB_CATEGORIES[:1]), OTHER_USERS[0])
        self.record("user_activity", OTHER_USERS[0])

    def drift(self, activity: str | None) -> None:
        if activity == "active" or (
            activity is None and self._rng.random() < DRIFT_ACTIVITY_CHANCE
        ):
            self.someone_works()


def _with_fraction_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _plain_z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _naive(moment: datetime) -> str:
    return moment.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="seconds")


def _with_offset(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")
