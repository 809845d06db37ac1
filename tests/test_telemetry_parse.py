"""Reading CML's telemetry history: its timestamp forms, which events are people's activity,
and only what is new since the last read."""

from datetime import UTC, datetime, timedelta

import pytest

from fleet.collection.sources.cml_telemetry import (
    RECENT_EVENTS,
    merge_recent,
    parse_timestamp,
    read_activity,
)

NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
OWN_ID = "11111111-1111-5111-8111-111111111111"
OTHER_ID = "22222222-2222-5222-8222-222222222222"


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-29T13:32:05.123456Z",
        "2026-11-29T13:32:05.123Z",
        "2026-11-29T13:32:05.123456789Z",  # nanoseconds: cut to microseconds
        "2026-11-29T13:32:05Z",
        "2026-11-29T13:32:05",  # no zone: UTC
        "2026-11-29 13:32:05",
        "2026-11-29T13:32:05+00:00",
        "2026-11-29T14:32:05.000+01:00",
    ],
)
def test_every_iso_form_reads_as_utc(text):
    moment = parse_timestamp(text)
    assert moment.tzinfo is not None
    assert moment.astimezone(UTC).replace(microsecond=0) == datetime(
        2026, 11, 29, 13, 32, 5, tzinfo=UTC
    )


@pytest.mark.parametrize(
    "value", [None, "", "yesterday", "2026-13-45T99:00:00Z", [], {}, True, "9" * 50]
)
def test_what_is_not_a_timestamp_is_none(value):
    assert parse_timestamp(value) is None


def test_epoch_seconds_are_read_too():
    assert parse_timestamp(NOW.timestamp()) == NOW


def event(category, minutes_ago, user=OTHER_ID, **data):
    stamp = (NOW - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {"category": category, "timestamp": stamp, "data": {"user_id": user, **data}}


def read(events, seen_until=None):
    return read_activity(
        events, own_user_id=OWN_ID, own_username="admin", seen_until=seen_until, now=NOW
    )


def test_lab_and_node_operations_by_anyone_count():
    found = read(
        [event("start_lab", 30, user=OWN_ID), event("boot_node", 20), event("wipe_lab", 10)]
    )
    assert [e["category"] for e in found.relevant] == ["wipe_lab", "boot_node", "start_lab"]
    assert found.last_activity == NOW - timedelta(minutes=10)


def test_user_activity_counts_only_for_other_users_than_ours():
    found = read(
        [
            event("user_activity", 5, user=OWN_ID),  # our own polling, by id
            {
                "category": "user_activity",
                "timestamp": "2026-11-29T13:56:00Z",
                "data": {"username": "admin"},
            },
            event("user_activity", 3, user=""),  # no user named: cannot be told apart
            event("user_activity", 40),
        ]
    )
    assert [e["at"] for e in found.relevant] == [(NOW - timedelta(minutes=40)).isoformat()]
    assert found.newest_seen == NOW - timedelta(minutes=3)


def test_other_categories_are_not_activity():
    found = read([event("system_stats", 1), event("feature_usage", 2), event("login_failed", 3)])
    assert found.relevant == [] and found.last_activity is None
    assert found.newest_seen == NOW - timedelta(minutes=1)


def test_only_events_newer_than_the_last_read_are_looked_at():
    history = [event("start_lab", 50), event("stop_lab", 30), event("system_stats", 20)]
    first = read(history)
    assert first.newest_seen == NOW - timedelta(minutes=20)
    again = read([*history, event("start_node", 5)], seen_until=first.newest_seen)
    assert [e["category"] for e in again.relevant] == ["start_node"]


def test_odd_events_are_skipped_with_a_note_and_future_ones_read_as_now():
    found = read(
        [
            "not an event",
            {"category": 7, "timestamp": "2026-11-29T13:00:00Z"},
            {"category": "start_lab", "timestamp": "last tuesday"},
            {"category": "start_lab", "timestamp": "2027-01-01T00:00:00Z", "data": []},
            event("stop_lab", 10, user="x\x00" * 100),
        ]
    )
    assert found.last_activity == NOW  # from the future, clamped: never "used" later than now
    assert found.relevant[1]["user"] == "x" * 64  # NUL removed, cut to 64
    assert found.notes == [
        "CML telemetry: 3 events without a category or a readable timestamp, skipped",
        "CML telemetry: 1 events dated in the future, read as now",
    ]


def test_at_most_ten_are_kept_newest_first():
    found = read([event("start_node", minutes) for minutes in range(30, 0, -1)])
    assert len(found.relevant) == RECENT_EVENTS
    assert found.relevant[0]["at"] == (NOW - timedelta(minutes=1)).isoformat()
    merged = merge_recent(found.relevant[:3], [*found.relevant[3:], {"at": "2026-01-01T00:00:00"}])
    assert len(merged) == RECENT_EVENTS and merged[:3] == found.relevant[:3]
    assert merge_recent([], "not a list") == []


def test_an_event_in_the_last_seconds_read_is_not_lost_to_mixed_precision():
    """The cursor came from a stamp with a fraction; a later event in the same second is
    stamped without one. It is read, and one already kept is not kept twice."""
    seen = read([{"category": "start_lab", "timestamp": "2026-11-29T13:50:05.900Z", "data": {}}])
    later = {"category": "stop_lab", "timestamp": "2026-11-29T13:50:05Z", "data": {}}
    again = read(
        [{"category": "start_lab", "timestamp": "2026-11-29T13:50:05.900Z", "data": {}}, later],
        seen_until=seen.newest_seen,
    )
    kept = merge_recent(again.relevant, seen.relevant)
    assert sorted(e["category"] for e in kept) == ["start_lab", "stop_lab"]
