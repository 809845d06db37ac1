"""The worker list page: stat cards, filters in the URL, pagination, CSV, htmx partials."""

import csv
import io
import re

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from fleet.models import Sample, Worker


@pytest.fixture
def logged_in(client, viewer):
    client.force_login(viewer)
    return client


@pytest.fixture
def big_fleet(db):
    workers = Worker.objects.bulk_create(
        Worker(
            name=f"w{n:03d}",
            region="us-east-1" if n % 2 else "eu-west-1",
            instance_id=f"i-{n:08x}",
            status="running",
            service_status="available" if n % 10 else "unavailable",
            cpu_percent=n % 100,
        )
        for n in range(300)
    )
    now = timezone.now()
    Sample.objects.bulk_create(Sample(worker=w, taken_at=now, cpu_percent=1) for w in workers)
    return workers


def test_it_pages_fifty_workers_at_a_time(logged_in, big_fleet):
    html = logged_in.get("/").content.decode()
    assert len(re.findall(r'<tr id="worker-\d+-row"', html)) == 50
    assert "1–50 of 300" in html and "page 1 of 6" in html
    assert "51–100 of 300" in logged_in.get("/?page=2").content.decode()
    assert "251–300 of 300" in logged_in.get("/?page=999").content.decode()


def test_queries_per_page_do_not_grow_with_the_fleet(logged_in, big_fleet):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            assert logged_in.get("/?region=us-east-1&sort=-cpu").status_code == 200
        return len(captured)

    small = queries()
    Worker.objects.bulk_create(
        Worker(region="us-east-1", instance_id=f"i-{n:08x}") for n in range(1000, 1700)
    )
    assert queries() == small <= 12


def test_the_title_counts_workers_in_trouble(logged_in, big_fleet):
    assert "<title>30 down · CML Fleet</title>" in logged_in.get("/").content.decode()


def test_stat_cards(logged_in, big_fleet):
    html = logged_in.get("/").content.decode()
    assert 'id="fleet-stats"' in html
    assert '<span class="value">300</span><span class="label">workers</span>' in html
    assert '<span class="value">30</span><span class="label">CML unavailable</span>' in html


def test_an_htmx_request_gets_only_the_table_and_a_title(logged_in, big_fleet):
    html = logged_in.get("/?q=w00", HTTP_HX_REQUEST="true").content.decode()
    assert html.lstrip().startswith("<title>")
    assert 'id="worker-table"' in html and "<html" not in html
    assert "1–10 of 10" in html


def test_bad_filters_show_a_note_never_a_500(logged_in, big_fleet):
    response = logged_in.get("/?region=atlantis&sort=bogus&page=-4&status=%00")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Ignored region" in html and "Ignored sort" in html


def test_no_match_and_no_workers_have_their_own_states(logged_in, big_fleet):
    assert "No workers match" in logged_in.get("/?q=nothing-like-this").content.decode()
    Worker.objects.all().delete()
    assert "No workers yet" in logged_in.get("/").content.decode()


def test_csv_exports_the_whole_filtered_list(logged_in, big_fleet):
    Worker.objects.filter(pk=big_fleet[0].pk).update(name="=HYPERLINK(evil)")
    response = logged_in.get("/?region=eu-west-1&format=csv")
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][:3] == ["name", "instance_id", "region"]
    assert len(rows) == 1 + 150
    assert {row[2] for row in rows[1:]} == {"eu-west-1"}
    assert "'=HYPERLINK(evil)" in [row[0] for row in rows]


def test_a_bad_filter_value_shows_the_whole_list_with_a_note(logged_in, big_fleet):
    html = logged_in.get("/?status=bogus").content.decode()
    assert "Ignored status &#x27;bogus&#x27;" in html
    assert "1–50 of 300" in html


DANGEROUS_PREFIXES = ["=", "+", "-", "@", "\t", "\r"]


@pytest.mark.parametrize("prefix", DANGEROUS_PREFIXES)
def test_csv_defuses_every_formula_prefix_in_remote_text(logged_in, worker, prefix):
    """Names and tags come from EC2, versions and errors from CML servers: a spreadsheet must
    read each as text, whatever it starts with."""
    payload = f"{prefix}cmd|' /C calc'!A0"
    remote = {
        "name": payload,
        "instance_type": payload,
        "cml_version": payload,
        "last_error": payload,
    }
    Worker.objects.filter(pk=worker.pk).update(**remote)
    response = logged_in.get("/?format=csv")
    header, row = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    cells = dict(zip(header, row, strict=True))
    for column in ["name", "instance_type", "cml_version", "last_error"]:
        assert cells[column] == "'" + payload, column


def test_csv_leaves_harmless_text_alone(logged_in, worker):
    Worker.objects.filter(pk=worker.pk).update(last_error="CML 401: bad token")
    response = logged_in.get("/?format=csv")
    header, row = list(csv.reader(io.StringIO(response.content.decode(), newline="")))
    assert dict(zip(header, row, strict=True))["last_error"] == "CML 401: bad token"


def test_sort_headers_link_to_the_flipped_order(logged_in, big_fleet):
    html = logged_in.get("/?sort=cpu").content.decode()
    assert 'aria-sort="ascending"' in html
    assert 'href="?sort=-cpu"' in html


def test_the_list_shows_a_running_cycles_progress_or_the_last_cycle(logged_in, db):
    from fleet.models import CollectionRun

    assert "No collection has run yet" in logged_in.get("/").content.decode()
    run = CollectionRun.objects.create(status="running", workers_total=40, workers_done=10)
    html = logged_in.get("/").content.decode()
    assert '<progress id="cycle-progress" max="40" value="10">25%</progress>' in html
    run.status = "succeeded"
    run.finished_at = timezone.now()
    run.save()
    assert "Last cycle" in logged_in.get("/").content.decode()


def test_a_search_with_a_nul_character_is_cleaned_not_a_500(client, viewer):
    client.force_login(viewer)
    response = client.get("/", {"q": "cml\x00"})
    assert response.status_code == 200 and "NUL characters removed" in response.content.decode()


def test_the_audit_page_takes_a_nul_character(client, viewer):
    client.force_login(viewer)
    assert client.get("/audit/", {"user": "a\x00", "worker": "b\x00"}).status_code == 200
