"""The idle rule at its edges: just started, used, snoozed, mid-action, activity unknown,
warned, then stopped."""

from datetime import UTC, datetime, timedelta

import pytest

from fleet.idle.rule import IdleRule
from fleet.models import Worker

NOW = datetime(2026, 11, 29, 14, 0, tzinfo=UTC)
RULE = IdleRule(
    threshold=timedelta(minutes=60),
    warning=timedelta(minutes=15),
    activity_fresh=timedelta(minutes=35),
)


def worker(**fields) -> Worker:
    values = {
        "status": "running",
        "running_since": NOW - timedelta(hours=5),
        "last_activity_at": NOW - timedelta(minutes=90),
        "activity_read_at": NOW - timedelta(minutes=2),
        "auto_pause": True,
        **fields,
    }
    return Worker(
        name="cml-worker-07", region="us-east-1", instance_id="i-0123456789abcdef0", **values
    )


def test_idle_after_the_threshold_since_the_last_activity():
    assert RULE.idle_since(worker(), NOW) == NOW - timedelta(minutes=30)
    assert RULE.idle_since(worker(last_activity_at=NOW - timedelta(minutes=59)), NOW) is None
    assert RULE.idle_since(worker(last_activity_at=NOW - timedelta(minutes=60)), NOW) == NOW


def test_the_count_starts_at_the_later_of_the_last_activity_and_the_last_start():
    just_started = worker(running_since=NOW - timedelta(minutes=10))
    assert RULE.idle_since(just_started, NOW) is None
    assert RULE.decide(just_started, NOW).idle_stop_at is None
    never_used = worker(last_activity_at=None, running_since=NOW - timedelta(minutes=61))
    assert RULE.idle_since(never_used, NOW) == NOW - timedelta(minutes=1)


@pytest.mark.parametrize("status", ["stopped", "stopping", "pending", "terminated", "unknown"])
def test_only_a_running_worker_is_idle(status):
    decision = RULE.decide(worker(status=status, idle_stop_at=NOW), NOW)
    assert (decision.idle_since, decision.idle_stop_at, decision.stop) == (None, None, False)


def test_an_idle_worker_with_auto_pause_is_warned_first():
    decision = RULE.decide(worker(), NOW)
    assert decision.idle_stop_at == NOW + timedelta(minutes=15)
    assert not decision.stop


def test_then_stopped_once_the_warning_has_run_out():
    warned = worker(idle_stop_at=NOW - timedelta(seconds=1))
    assert RULE.decide(warned, NOW).stop
    assert not RULE.decide(worker(idle_stop_at=NOW + timedelta(seconds=1)), NOW).stop


def test_activity_after_the_warning_takes_it_back():
    used = worker(
        idle_stop_at=NOW - timedelta(minutes=1), last_activity_at=NOW - timedelta(minutes=2)
    )
    decision = RULE.decide(used, NOW)
    assert (decision.idle_since, decision.idle_stop_at, decision.stop) == (None, None, False)


def test_auto_pause_off_or_snoozed_means_idle_but_never_warned():
    for quiet in (worker(auto_pause=False), worker(snooze_until=NOW + timedelta(minutes=1))):
        decision = RULE.decide(quiet, NOW)
        assert decision.idle_since is not None
        assert (decision.idle_stop_at, decision.stop) == (None, False)
    ended = worker(snooze_until=NOW - timedelta(minutes=1))
    assert RULE.decide(ended, NOW).idle_stop_at == NOW + timedelta(minutes=15)  # warned afresh


def test_never_stopped_during_another_action():
    busy = worker(idle_stop_at=NOW - timedelta(minutes=5), pending_action="start")
    decision = RULE.decide(busy, NOW)
    assert decision.idle_stop_at == NOW - timedelta(minutes=5) and not decision.stop


def test_unknown_activity_is_never_a_reason_to_stop():
    for unknown in (
        worker(activity_read_at=None),
        worker(
            activity_read_at=NOW - timedelta(minutes=36), idle_stop_at=NOW - timedelta(minutes=1)
        ),
    ):
        decision = RULE.decide(unknown, NOW)
        assert (decision.idle_stop_at, decision.stop) == (None, False)


def test_muting_alerts_does_not_change_the_rule():
    muted = worker(muted_until=NOW + timedelta(hours=4), idle_stop_at=NOW - timedelta(seconds=1))
    assert RULE.decide(muted, NOW).stop


def test_the_rule_reads_as_one_sentence():
    assert RULE.sentence() == (
        "A running worker is idle after 1 h without lab, node or user activity on its CML "
        "(counted from its last start if that is later); with auto-pause on it is warned, then "
        "stopped 15 min later unless someone uses it or snoozes it."
    )
