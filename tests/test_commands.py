"""manage.py refresh_workers and import_workers."""

import pytest
from django.core.management import CommandError, call_command

from fleet.models import Change, CollectionRun, Worker


def test_refresh_workers_collects_everything_and_prints_a_summary(fleet_workers, capsys):
    call_command("refresh_workers")
    out = capsys.readouterr().out
    assert f"full run succeeded: seen {len(fleet_workers)}, changed {len(fleet_workers)}" in out
    assert CollectionRun.objects.get().trigger == "command"


def test_refresh_workers_takes_ids_and_skips_labs(fleet_workers, capsys):
    call_command("refresh_workers", str(fleet_workers[0].pk), "--no-labs")
    assert "metrics run succeeded: seen 1," in capsys.readouterr().out


def test_refresh_workers_refuses_unknown_ids(fleet_workers):
    with pytest.raises(CommandError, match="unknown worker id\\(s\\): 999999"):
        call_command("refresh_workers", str(fleet_workers[0].pk), "999999")
    assert not CollectionRun.objects.exists()


def test_import_workers_creates_workers_once(fleet_settings, db, capsys):
    in_region = [i for i in fleet_settings.instances if i.region == "us-east-1"]
    call_command("import_workers", "--region", "us-east-1")
    assert f"imported {len(in_region)} new" in capsys.readouterr().out
    call_command("import_workers", "--region", "us-east-1")
    assert f"imported 0 new, {len(in_region)} already known" in capsys.readouterr().out
    assert Worker.objects.count() == len(in_region)
    assert set(Worker.objects.values_list("name", flat=True)) == {i.name for i in in_region}
    assert Change.objects.filter(kind="created").count() == len(in_region)


def test_import_workers_filters_by_instance_id(fleet_settings, db):
    wanted = fleet_settings.instances[0]
    call_command("import_workers", "--region", wanted.region, "--instance-id", wanted.instance_id)
    assert list(Worker.objects.values_list("instance_id", flat=True)) == [wanted.instance_id]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--region", "sa-east-1"], "is not in AWS_REGIONS"),
        (["--region", "us-east-1", "--tag", "novalue"], "use KEY=VALUE"),
        (["--region", "us-east-1", "--instance-id", "i-nope"], "is not an EC2 instance id"),
    ],
)
def test_import_workers_rejects_bad_input(fleet_settings, db, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("import_workers", *args)
    assert not Worker.objects.exists()
