import pytest

from fleet.models import Lab


@pytest.fixture
def logged_in(client, viewer):
    client.force_login(viewer)
    return client


def test_the_list_shows_each_worker_in_its_own_row_fragment(logged_in, worker):
    html = logged_in.get("/").content.decode()
    assert f'id="worker-{worker.pk}-row"' in html
    assert 'sse-swap="fragments"' in html  # where the live fragments (swapped by id) arrive
    for column in [
        "Status",
        "Name",
        "Instance",
        "Type",
        "Region",
        "CML",
        "CPU",
        "Memory",
        "Disk",
        "Labs",
        "Last polled",
    ]:
        assert f">{column}<" in html


def test_the_list_says_how_to_add_workers_when_there_are_none(logged_in):
    html = logged_in.get("/").content.decode()
    assert "No workers yet" in html
    assert "import_workers" in html


def test_the_worker_page_has_aws_cml_and_labs_sections(logged_in, worker):
    Lab.objects.create(worker=worker, lab_id="l1", title="BGP lab", state="STARTED", owner="ann")
    html = logged_in.get(f"/workers/{worker.pk}/").content.decode()
    for fragment in ["aws", "cml", "labs"]:
        assert f'id="worker-{worker.pk}-{fragment}"' in html
    assert "BGP lab" in html


def test_an_unknown_worker_is_404(logged_in, db):
    assert logged_in.get("/workers/999999/").status_code == 404


def test_pages_load_htmx_and_its_sse_extension_from_our_own_static_files(logged_in, worker):
    html = logged_in.get("/").content.decode()
    assert "/static/django_htmx/htmx-2.min.js" in html
    assert "/static/django_htmx/ext/hx-sse-2.min.js" in html
    assert "https://" not in html.split("<body")[0]  # no CDN in <head>


def test_refresh_buttons_show_only_to_operators(client, viewer, operator, worker):
    client.force_login(viewer)
    assert 'class="can-refresh"' not in client.get("/").content.decode()
    client.force_login(operator)
    assert 'class="can-refresh"' in client.get("/").content.decode()


def test_the_worker_page_links_the_cml_ui_and_counts_down_to_the_next_cycle(logged_in, worker):
    worker.cml_endpoint = "https://3.3.3.3"
    worker.save()
    html = logged_in.get(f"/workers/{worker.pk}/").content.decode()
    assert 'href="https://3.3.3.3/"' in html and "Open the CML UI" in html
    assert "<time data-countdown" in html  # migrate made the metrics schedule


def test_pages_start_their_stream_where_the_page_was_rendered(logged_in, worker):
    from fleet.models.changes import record_change

    record_change(worker.pk, fields=["status"])
    from fleet.models import Change

    top = Change.objects.latest("id").pk
    for url in ["/", f"/workers/{worker.pk}/"]:
        html = logged_in.get(url).content.decode()
        assert f"last_event_id={top}" in html
