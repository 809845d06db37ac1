"""Filters, search, sort and stat cards of the worker list (fleet.web.worker_list)."""

import pytest
from django.http import QueryDict

from fleet.models import Worker
from fleet.web.worker_list import MAX_SEARCH, filtered_workers, parse_list_state

REGIONS = ["us-east-1", "eu-west-1"]


def _state(query: str):
    return parse_list_state(QueryDict(query), REGIONS)


@pytest.fixture
def fleet(db):
    rows = [
        ("alpha", "us-east-1", "running", "available", "3.1.1.1", 10.0),
        ("bravo", "us-east-1", "running", "unavailable", "3.1.1.2", 90.0),
        ("charlie", "eu-west-1", "stopped", "unknown", None, None),
        ("delta", "eu-west-1", "terminated", "unknown", None, None),
        ("echo", "eu-west-1", "running", "available", "3.1.1.5", 50.0),
    ]
    return Worker.objects.bulk_create(
        Worker(
            name=name,
            region=region,
            instance_id=f"i-{n:08x}",
            status=status,
            service_status=service,
            public_ip=ip,
            cpu_percent=cpu,
        )
        for n, (name, region, status, service, ip, cpu) in enumerate(rows)
    )


def _names(query: str) -> list[str]:
    return [w.name for w in filtered_workers(_state(query))]


def test_terminated_workers_are_hidden_by_default(fleet):
    assert _names("") == ["alpha", "bravo", "charlie", "echo"]
    assert "delta" in _names("terminated=1")
    assert _names("status=terminated") == ["delta"]


@pytest.mark.parametrize(
    ("query", "names"),
    [
        ("region=eu-west-1", ["charlie", "echo"]),
        ("status=running", ["alpha", "bravo", "echo"]),
        ("service=unavailable", ["bravo"]),
        ("q=CHAR", ["charlie"]),
        ("q=i-00000004", ["echo"]),
        ("q=3.1.1.2", ["bravo"]),
        ("region=us-east-1&status=running&service=available", ["alpha"]),
    ],
)
def test_filters_and_search_combine(fleet, query, names):
    assert _names(query) == names


def test_sorting_by_any_column_both_ways_with_empty_values_last(fleet):
    assert _names("sort=cpu") == ["alpha", "echo", "bravo", "charlie"]
    assert _names("sort=-cpu") == ["bravo", "echo", "alpha", "charlie"]
    assert _names("sort=-name") == ["echo", "charlie", "bravo", "alpha"]


@pytest.mark.parametrize(
    ("query", "note", "same_as"),
    [
        ("region=mars-1", "Ignored region 'mars-1'", ""),
        ("status=flying&region=eu-west-1", "Ignored status 'flying'", "region=eu-west-1"),
        ("service=meh", "Ignored service 'meh'", ""),
        ("sort=shoe_size", "Ignored sort 'shoe_size'", ""),
        ("q=" + "a" * 500, "Search shortened", "q=" + "a" * MAX_SEARCH),
    ],
)
def test_bad_values_fall_back_with_a_note(fleet, query, note, same_as):
    state = _state(query)
    assert any(note in n for n in state.notes)
    assert _names(query) == _names(same_as)  # as if the bad value were not there


@pytest.mark.parametrize("query", ["region=mars-1", "status=bogus", "service=meh"])
def test_a_bad_filter_value_is_noted_and_not_applied(fleet, query):
    """Dropped means dropped: the list is the unfiltered one, not empty."""
    name = query.split("=")[0]
    state = _state(query)
    assert any(note.startswith(f"Ignored {name} ") for note in state.notes)
    assert getattr(state, name) == ""
    assert _names(query) == _names("") == ["alpha", "bravo", "charlie", "echo"]


def test_the_state_round_trips_through_the_url():
    state = _state("q=abc&region=eu-west-1&sort=-cpu&terminated=1&trouble=1&page=3")
    assert _state(state.query(page="3")) == state
    assert "page" not in state.query()  # changing anything else goes back to page 1
    assert "sort=cpu" in state.sorted_by("cpu")  # a second click flips the order
    assert "sort=memory" in state.sorted_by("memory")


def test_stat_cards_count_the_fleet_in_one_query(fleet, django_assert_num_queries):
    with django_assert_num_queries(1):
        stats = Worker.objects.stats()
    assert stats["total"] == 4 and stats["running"] == 3 and stats["stopped"] == 1
    assert stats["cml_unavailable"] == 1 and stats["in_trouble"] == 1
    assert stats["average_cpu"] == pytest.approx(50.0)


def test_the_trouble_filter_shows_running_workers_whose_cml_or_checks_fail(fleet):
    Worker.objects.filter(name="echo").update(system_check="impaired")
    assert _names("trouble=1") == ["bravo", "echo"]
    assert _state("trouble=1").query() == "trouble=1"
    assert Worker.objects.stats()["in_trouble"] == 2


def test_visible_workers_are_the_ones_not_terminated(fleet):
    assert sorted(w.name for w in Worker.objects.visible()) == ["alpha", "bravo", "charlie", "echo"]
