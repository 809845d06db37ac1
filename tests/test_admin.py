import uuid

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission, User
from django.utils import timezone
from django_q.models import OrmQ, Schedule, Task

from fleet.models import CollectionRun, Lab, Worker
from fleet.roles import ensure_roles


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


@pytest.fixture
def schedule(db) -> Schedule:
    return Schedule.objects.get(name="fleet: prune")


def test_the_admin_role_may_look_at_django_q2_but_not_add_or_change(admin_client_, schedule):
    assert admin_client_.get("/admin/django_q/schedule/").status_code == 200
    assert admin_client_.get("/admin/django_q/ormq/").status_code == 200
    assert admin_client_.get("/admin/django_q/schedule/add/").status_code == 403
    data = {
        "name": "evil",
        "func": "os.system",
        "args": "'touch /tmp/x'",
        "schedule_type": "O",
        "repeats": "-1",
    }
    assert admin_client_.post("/admin/django_q/schedule/add/", data).status_code == 403
    change = f"/admin/django_q/schedule/{schedule.pk}/change/"
    assert admin_client_.post(change, {**data, "name": schedule.name}).status_code == 403
    assert "Save" not in admin_client_.get(change).content.decode()  # a read-only view
    delete = f"/admin/django_q/schedule/{schedule.pk}/delete/"
    assert admin_client_.post(delete, {"post": "yes"}).status_code == 403
    schedule.refresh_from_db()
    assert schedule.func == "fleet.tasks.prune"
    assert not Schedule.objects.filter(name="evil").exists()


@pytest.mark.parametrize("admin_page", ["success", "failure"])
def test_the_admin_role_may_not_resubmit_tasks(admin_client_, admin_page, db):
    task = _task(success=admin_page == "success")
    url = f"/admin/django_q/{admin_page}/"
    assert "resubmit_task" not in admin_client_.get(url).content.decode()
    admin_client_.post(url, {"action": "resubmit_task", "_selected_action": [task.pk]})
    assert not OrmQ.objects.exists()
    assert Task.objects.filter(pk=task.pk).exists()


def test_superusers_may_add_schedules_and_resubmit_tasks(client, db):
    client.force_login(User.objects.create_superuser("root", password="pw-root"))
    response = client.post(
        "/admin/django_q/schedule/add/",
        {
            "name": "extra",
            "func": "fleet.tasks.prune",
            "schedule_type": "H",
            "repeats": "-1",
            "next_run_0": "2030-01-01",
            "next_run_1": "00:00:00",
        },
    )
    assert response.status_code == 302, response.context["adminform"].form.errors
    assert Schedule.objects.filter(name="extra").exists()
    task = _task(success=False)
    url = "/admin/django_q/failure/"
    assert "resubmit_task" in client.get(url).content.decode()
    client.post(url, {"action": "resubmit_task", "_selected_action": [task.pk]})
    assert OrmQ.objects.get().func() == "fleet.tasks.prune"


def test_roles_take_back_permissions_an_older_version_granted(db):
    admin_group = Group.objects.get(name="admin")
    stale = Permission.objects.get(codename="add_schedule")
    admin_group.permissions.add(stale, Permission.objects.get(codename="add_user"))
    ensure_roles(apps)
    codenames = set(admin_group.permissions.values_list("codename", flat=True))
    assert "add_schedule" not in codenames
    assert "add_user" in codenames  # not a managed app: left as people set it
    assert {"view_schedule", "view_task", "view_success", "view_failure", "view_ormq"} <= codenames
    assert {"change_worker", "delete_worker", "refresh_worker"} <= codenames
    assert not {c for c in codenames if c.endswith(("_schedule", "_task", "_ormq"))} - {
        "view_schedule",
        "view_task",
        "view_ormq",
    }


def _task(success: bool) -> Task:
    now = timezone.now()
    return Task.objects.create(
        id=uuid.uuid4().hex,
        name="old task",
        func="fleet.tasks.prune",
        started=now,
        stopped=now,
        success=success,
    )


def test_a_runs_page_lists_its_shards(admin_client_, db):
    from fleet.models import CollectionRun, CollectionShard, ShardStatus

    run = CollectionRun.objects.create(workers_total=3)
    CollectionShard.objects.create(
        run=run,
        number=1,
        region="eu-west-1",
        worker_ids=[1, 2],
        status=ShardStatus.FAILED,
        message="did not finish within 720 s: its process died",
    )
    html = admin_client_.get(f"/admin/fleet/collectionrun/{run.pk}/change/").content.decode()
    assert "eu-west-1" in html and "its process died" in html
