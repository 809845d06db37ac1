"""Chart geometry (fleet.live.charts) and the charts' data (fleet.live.history, pages)."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from fleet.live.charts import (
    BOTTOM,
    BUCKETS,
    LEFT,
    RIGHT,
    TOP,
    Event,
    build_chart,
    default_window,
    parse_window,
)
from fleet.live.history import fleet_charts, worker_charts
from fleet.models import ActionEntry, Sample, Worker
from fleet.models.actions import ActionName, ActionOutcome

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
GAP = timedelta(minutes=5)


def series(*values, every=MINUTE, end=NOW):
    """Points every `every`, the last at `end`."""
    return [(end - (len(values) - 1 - i) * every, v) for i, v in enumerate(values)]


def test_points_go_by_time_across_the_plot_and_by_value_up_it():
    chart = build_chart(
        [(NOW - timedelta(minutes=30), 0), (NOW, 100)], "1h", now=NOW, max_gap=GAP * 10
    )
    (line,) = chart.lines
    middle = LEFT + (RIGHT - LEFT) / 2
    assert line == f"M{middle:.1f},{BOTTOM:.1f} L{RIGHT:.1f},{TOP:.1f}"


def test_a_missing_value_breaks_the_line():
    chart = build_chart(series(10, 20, None, 30, 40), "1h", now=NOW, max_gap=GAP)
    assert len(chart.lines) == 2


def test_samples_further_apart_than_the_gap_are_not_joined():
    points = series(10, 20, end=NOW - timedelta(minutes=30)) + series(30, 40, 50)
    chart = build_chart(points, "1h", now=NOW, max_gap=GAP)
    assert len(chart.lines) == 2
    first, second = chart.lines
    # the first run ends before the gap, the second starts after it: nothing drawn across
    last_x = float(first.split()[-1].lstrip("L").split(",")[0])
    first_x = float(second.split()[0].lstrip("M").split(",")[0])
    assert first_x - last_x > (RIGHT - LEFT) * 25 / 60


def test_a_lone_sample_is_a_dot_not_an_invisible_line():
    chart = build_chart(
        series(10, end=NOW - timedelta(minutes=20)) + series(5, 6), "1h", now=NOW, max_gap=GAP
    )
    assert len(chart.dots) == 1 and len(chart.lines) == 1


def test_a_week_of_minutes_is_averaged_into_at_most_the_bucket_count():
    points = series(*[i % 100 for i in range(7 * 24 * 60)])
    chart = build_chart(points, "7d", now=NOW, max_gap=GAP)
    (line,) = chart.lines
    assert len(line.split()) <= BUCKETS + 1
    assert len(chart.hovers) <= BUCKETS + 1


def test_current_lowest_and_highest_are_marked_with_their_values():
    chart = build_chart(series(40, 90, 5, 42), "1h", now=NOW, max_gap=GAP)
    assert (chart.current.label, chart.low.label, chart.high.label) == ("42%", "5%", "90%")
    assert chart.current.x == RIGHT
    assert chart.high.y < chart.current.y < chart.low.y  # SVG's y grows downwards
    assert chart.summary == "last 42%, lowest 5%, highest 90%"
    assert "highest 90% at 11:58" in chart.high.title


def test_a_flat_series_marks_only_its_current_value():
    chart = build_chart(series(7, 7, 7), "1h", now=NOW, max_gap=GAP)
    assert chart.current.label == "7%" and chart.low is None and chart.high is None


def test_percentages_get_gridlines_every_quarter_and_counts_a_round_scale():
    percent = build_chart(series(10), "1h", now=NOW, max_gap=GAP)
    assert [t.label for t in percent.y_grid] == ["0%", "25%", "50%", "75%", "100%"]
    counts = build_chart(series(3, 17), "1h", now=NOW, max_gap=GAP, ceiling=None, unit="")
    assert [t.label for t in counts.y_grid] == ["0", "5", "10", "15", "20"]
    one = build_chart(series(0, 1), "1h", now=NOW, max_gap=GAP, ceiling=None, unit="")
    assert [t.label for t in one.y_grid][-1] == "1"


@pytest.mark.parametrize(
    ("window", "labels"),
    [
        ("1h", ["11:10", "11:20", "11:30", "11:40", "11:50", "12:00"]),
        ("6h", ["07:00", "08:00", "09:00", "10:00", "11:00", "12:00"]),
        ("24h", ["15:00", "18:00", "21:00", "00:00", "03:00", "06:00", "09:00", "12:00"]),
        ("7d", ["Mon 23", "Tue 24", "Wed 25", "Thu 26", "Fri 27", "Sat 28", "Sun 29"]),
    ],
)
def test_time_ticks_fall_on_round_times_inside_the_window(window, labels):
    chart = build_chart([], window, now=NOW + timedelta(minutes=5), max_gap=GAP)
    assert [t.label for t in chart.x_ticks] == labels
    assert all(LEFT <= t.at <= RIGHT for t in chart.x_ticks)
    assert chart.empty and chart.summary == "no samples in this window"


def test_each_point_has_a_hover_band_with_its_time_and_value():
    chart = build_chart(series(10, 20, 30), "1h", now=NOW, max_gap=GAP)
    assert [h.title for h in chart.hovers] == ["11:58 · 10%", "11:59 · 20%", "12:00 · 30%"]
    # the bands meet halfway between points: the pointer anywhere along the line finds one
    first, second, _ = chart.hovers
    assert first.x + first.width == pytest.approx(second.x, abs=0.11)


def test_events_inside_the_window_are_marked_at_their_time():
    events = [
        Event(NOW - timedelta(minutes=30), "stop worker by system", "warn"),
        Event(NOW - timedelta(hours=2), "too old", "good"),
    ]
    chart = build_chart(series(1, 2), "1h", now=NOW, max_gap=GAP, events=events)
    (mark,) = chart.events
    assert mark.x == pytest.approx(LEFT + (RIGHT - LEFT) / 2, abs=0.1)
    assert (mark.title, mark.tone) == ("11:30 stop worker by system", "warn")


def test_the_default_window_is_the_smallest_holding_every_sample_up_to_a_day():
    assert default_window(None, NOW) == "1h"
    assert default_window(NOW - timedelta(minutes=10), NOW) == "1h"
    assert default_window(NOW - timedelta(hours=3), NOW) == "6h"
    assert default_window(NOW - timedelta(hours=20), NOW) == "24h"
    assert default_window(NOW - timedelta(days=6), NOW) == "24h"


def test_a_window_is_one_of_four():
    assert parse_window("7d") == "7d" and parse_window(None) is None and parse_window("") is None
    with pytest.raises(ValueError, match="1h, 6h, 24h, 7d"):
        parse_window("2w")


def test_worker_charts_mark_the_workers_actions_labelled_from_their_entries(worker):
    now = timezone.now()
    Sample.objects.create(worker=worker, taken_at=now - timedelta(minutes=5), cpu_percent=10)
    Sample.objects.create(worker=worker, taken_at=now, cpu_percent=20)
    ActionEntry.objects.create(
        action=ActionName.STOP_WORKER,
        worker=worker,
        target="w",
        outcome=ActionOutcome.SUCCEEDED,
        started_at=now - timedelta(minutes=2),
    )
    ActionEntry.objects.create(
        action=ActionName.START_WORKER,
        username="alice",
        worker=worker,
        target="w",
        outcome=ActionOutcome.FAILED,
        started_at=now - timedelta(minutes=1),
    )
    ActionEntry.objects.create(  # a refresh changes nothing: not marked
        action=ActionName.REFRESH_WORKER, worker=worker, target="w", started_at=now
    )
    shown = worker_charts(worker, "1h", now=now)
    assert [e.label for e in shown["events"]] == [
        "stop worker by system",
        "start worker by alice (failed)",
    ]
    cpu = shown["charts"][0][1]
    assert cpu.current.label == "20%" and [e.tone for e in cpu.events] == ["warn", "good"]


def test_the_fleet_chart_averages_each_cycle_and_ignores_a_lone_refresh(db):
    workers = Worker.objects.bulk_create(
        Worker(region="us-east-1", instance_id=f"i-{n:08x}") for n in range(4)
    )
    now = timezone.now()
    for minutes, values in ((10, (10, 20, 30, 40)), (5, (50, 50, 50, 50))):
        Sample.objects.bulk_create(
            Sample(worker=w, taken_at=now - timedelta(minutes=minutes), cpu_percent=v)
            for w, v in zip(workers, values, strict=True)
        )
    Sample.objects.create(worker=workers[0], taken_at=now - timedelta(minutes=2), cpu_percent=99)
    shown = fleet_charts("1h", now=now)
    cpu = shown["charts"][0][1]
    assert shown["count"] == 2
    assert [h.title.split(" · ")[1] for h in cpu.hovers] == ["25%", "50%"]


def test_the_worker_page_keeps_its_window_in_the_url_and_refuses_a_bad_one(client, viewer, worker):
    Sample.objects.create(worker=worker, taken_at=timezone.now(), cpu_percent=42)
    client.force_login(viewer)
    page = client.get(f"/workers/{worker.pk}/?window=7d").content.decode()
    assert "Monitoring, last 7 days" in page
    assert f'id="worker-{worker.pk}-history-7d"' in page  # swapped by id when it changes
    assert re.search(r'<a href="\?window=7d" aria-current="true">7d</a>', page)
    assert '<a href="?window=6h">6h</a>' in page
    refused = client.get(f"/workers/{worker.pk}/?window=forever")
    assert refused.status_code == 400
    assert "window must be one of 1h, 6h, 24h, 7d" in refused.content.decode()


def test_the_list_shows_the_fleet_chart_and_links_each_stat_card_to_its_filter(
    client, viewer, worker
):
    Sample.objects.create(worker=worker, taken_at=timezone.now(), cpu_percent=42)
    client.force_login(viewer)
    page = client.get("/?window=24h&status=running").content.decode()
    assert "Fleet, last 24 hours" in page
    assert (
        'aria-label="Fleet CPU %, average of the workers reporting over the last 24 hours' in page
    )
    # the window links keep the filters
    assert 'href="?status=running&amp;window=6h"' in page
    for link in (
        "/?status=running",
        "/?status=stopped",
        "/?status=running&amp;service=not-available",
        "/?trouble=1",
    ):
        assert f'href="{link}"' in page
    assert client.get("/?window=nope").status_code == 200  # a bad list value is a note


def test_the_current_value_is_not_labelled_twice_when_it_is_also_the_highest():
    chart = build_chart(series(10, 20, 30), "1h", now=NOW, max_gap=GAP)
    assert chart.high is None and chart.low.label == "10%"
    assert chart.values == ("30%", "10%", "30%")  # the caption still names the highest


def test_relative_times_are_short_enough_for_a_table_column():
    from fleet.templatetags.fleet_format import short_age

    assert short_age(timedelta(seconds=20)) == "<1 min"
    assert short_age(timedelta(minutes=5, seconds=59)) == "5 min"
    assert short_age(timedelta(hours=2)) == "2 h"
    assert short_age(timedelta(hours=2, minutes=5)) == "2 h 5 min"
    assert short_age(timedelta(days=3, hours=4, minutes=7)) == "3 d 4 h"
