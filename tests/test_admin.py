import pytest

from fleet.models import CollectionRun, Lab, Worker


@pytest.fixture
def admin_client_(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.mark.parametrize(
    "url",
    [
        "/admin/fleet/worker/",
        "/admin/fleet/worker/add/",
        "/admin/fleet/worker/{worker}/change/",
        "/admin/fleet/lab/",
        "/admin/fleet/lab/{lab}/change/",
        "/admin/fleet/collectionrun/",
        "/admin/fleet/collectionrun/{run}/change/",
        "/admin/django_q/schedule/",
        "/admin/django_q/success/",
        "/admin/django_q/failure/",
    ],
)
def test_admin_pages_load(admin_client_, worker, url):
    lab = Lab.objects.create(worker=worker, lab_id="l1", title="Lab")
    run = CollectionRun.objects.create()
    response = admin_client_.get(url.format(worker=worker.pk, lab=lab.pk, run=run.pk))
    assert response.status_code == 200


def test_the_worker_list_filters_and_searches(admin_client_, worker):
    response = admin_client_.get("/admin/fleet/worker/", {"q": "0123456789abcdef0"})
    assert "cml-worker-01" in response.content.decode()
    response = admin_client_.get("/admin/fleet/worker/", {"status__exact": "running"})
    assert "cml-worker-01" not in response.content.decode()


def test_adding_a_worker_works(admin_client_, db):
    response = admin_client_.post(
        "/admin/fleet/worker/add/",
        {
            "name": "new",
            "region": "eu-west-1",
            "instance_id": "i-0aaaaaaaaaaaaaaaa",
            "labs-TOTAL_FORMS": 0,
            "labs-INITIAL_FORMS": 0,
        },
    )
    assert response.status_code == 302
    assert Worker.objects.filter(instance_id="i-0aaaaaaaaaaaaaaaa").exists()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"region": "us-east-1", "instance_id": "i-xyz"}, "is not an EC2 instance id"),
        ({"region": "mars-1", "instance_id": "i-01234567"}, "not one of the configured regions"),
        (
            {"region": "us-east-1", "instance_id": "i-0123456789abcdef0"},
            "Worker with this Region and Instance id already exists",
        ),
    ],
)
def test_bad_input_gets_a_form_error_not_a_500(admin_client_, worker, fields, message):
    data = {"name": "x", **fields, "labs-TOTAL_FORMS": 0, "labs-INITIAL_FORMS": 0}
    response = admin_client_.post("/admin/fleet/worker/add/", data)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert Worker.objects.count() == 1


def test_observed_fields_are_read_only(admin_client_, worker):
    admin_client_.post(
        f"/admin/fleet/worker/{worker.pk}/change/",
        {
            "name": "renamed",
            "region": "us-east-1",
            "instance_id": worker.instance_id,
            "status": "running",
            "labs-TOTAL_FORMS": 0,
            "labs-INITIAL_FORMS": 0,
        },
    )
    worker.refresh_from_db()
    assert worker.name == "renamed"
    assert worker.status == "unknown"
