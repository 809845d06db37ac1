import re

import pytest
from django.utils import timezone

from fleet.models import CollectionRun


def _run_links(html: str) -> int:
    return len(re.findall(r'href="/runs/\d+/"', html))


@pytest.fixture
def runs(worker):
    now = timezone.now()
    return [
        CollectionRun.objects.create(
            kind="metrics",
            status="succeeded",
            started_at=now,
            finished_at=now,
            workers_seen=3,
            workers_changed=2,
            workers_failed=1,
            errors={str(worker.pk): "HTTP 500 from /system_stats", "424242": "timeout"},
        ),
        CollectionRun.objects.create(kind="full", status="skipped", message="another collection"),
    ]


def test_the_run_list_shows_every_run(client, viewer, runs):
    client.force_login(viewer)
    html = client.get("/runs/").content.decode()
    assert _run_links(html) == 2
    assert "Skipped (another cycle was running)" in html


def test_the_run_list_filters_by_kind_and_explains_a_bad_kind(client, viewer, runs):
    client.force_login(viewer)
    assert _run_links(client.get("/runs/", {"kind": "full"}).content.decode()) == 1
    response = client.get("/runs/", {"kind": "bogus"})
    assert response.status_code == 200
    assert "Unknown kind" in response.content.decode()


def test_the_run_list_paginates_and_survives_bad_page_numbers(client, viewer, db):
    CollectionRun.objects.bulk_create(CollectionRun() for _ in range(60))
    client.force_login(viewer)
    assert "Page 1 of 2" in client.get("/runs/").content.decode()
    assert "Page 2 of 2" in client.get("/runs/", {"page": "2"}).content.decode()
    assert client.get("/runs/", {"page": "zzz"}).status_code == 200


def test_a_run_page_lists_its_per_worker_errors(client, viewer, runs, worker):
    client.force_login(viewer)
    html = client.get(f"/runs/{runs[0].pk}/").content.decode()
    assert "HTTP 500 from /system_stats" in html and str(worker) in html
    assert "worker 424242 (deleted)" in html


def test_run_pages_need_a_role(client, outsider, runs):
    client.force_login(outsider)
    assert client.get("/runs/").status_code == 403
    assert client.get(f"/runs/{runs[0].pk}/").status_code == 403


def test_an_unknown_run_is_404(client, viewer, db):
    client.force_login(viewer)
    assert client.get("/runs/999999/").status_code == 404


def test_a_failed_run_shows_as_failed_with_its_message(client, viewer, db):
    message = "did not finish: killed or timed out (task timeout 780 s)"
    run = CollectionRun.objects.create(kind="metrics", status="failed", message=message)
    client.force_login(viewer)
    listed = client.get("/runs/").content.decode()
    assert 'class="badge bad">Failed</span>' in listed and message in listed
    detail = client.get(f"/runs/{run.pk}/").content.decode()
    assert "<dd>Failed</dd>" in detail and message in detail
    progress = client.get("/").content.decode()  # the list page's progress line
    assert f'href="/runs/{run.pk}/">failed</a>' in progress and message in progress
