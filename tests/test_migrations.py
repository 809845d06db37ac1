"""Data steps of migrations that rename stored values."""

import importlib

from django.apps import apps

from fleet.models import Change, ChangeKind, CollectionRun, RunKind


def test_fleet_changes_and_full_runs_get_their_own_names(db):
    migration = importlib.import_module("fleet.migrations.0007_change_kind_fleet_run_kind_full")
    progress = Change.objects.create(worker_id=0, kind="updated", fields=["run"])
    worker_change = Change.objects.create(worker_id=7, kind="updated", fields=["status"])
    full = CollectionRun.objects.create(kind="labs")
    metrics = CollectionRun.objects.create(kind="metrics")

    migration.rename_forward(apps, None)

    progress.refresh_from_db()
    worker_change.refresh_from_db()
    assert (progress.kind, progress.worker_id) == (ChangeKind.FLEET, None)
    assert (worker_change.kind, worker_change.worker_id) == (ChangeKind.UPDATED, 7)
    kinds = dict(CollectionRun.objects.values_list("pk", "kind"))
    assert kinds == {full.pk: RunKind.FULL, metrics.pk: RunKind.METRICS}

    migration.rename_backward(apps, None)
    progress.refresh_from_db()
    assert (progress.kind, progress.worker_id) == ("updated", 0)
    assert CollectionRun.objects.get(pk=full.pk).kind == "labs"
