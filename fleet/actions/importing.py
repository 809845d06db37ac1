"""Import workers from EC2 by region and tags, or by instance ids: the page's preview and
import, `manage.py import_workers` and the scheduled auto-import (AUTO_IMPORT_TAGS) all
use these functions."""

from dataclasses import dataclass

from django.conf import settings

from fleet.actions.audit import Outcome, UpstreamError, perform, record
from fleet.collection.observe import aws_reader
from fleet.collection.sources.aws import InstanceObservation
from fleet.models import (
    INSTANCE_ID_RE,
    ActionEntry,
    ActionName,
    ActionOutcome,
    ChangeKind,
    Worker,
    WorkerStatus,
)
from fleet.models.changes import record_changes


@dataclass(frozen=True)
class Found:
    """One matching instance and whether a worker already watches it."""

    region: str
    instance: InstanceObservation
    known: bool


def parse_tags(items: list[str]) -> dict[str, str]:
    """["KEY=VALUE", ...] as a dict; ValueError names the first item that is not KEY=VALUE."""
    tags = {}
    for item in items:
        key, sep, value = item.strip().partition("=")
        if not sep or not key.strip():
            raise ValueError(f"{item!r}: use KEY=VALUE")
        tags[key.strip()] = value.strip()
    return tags


def check_request(regions: list[str], instance_ids: list[str]) -> None:
    """ValueError for a region outside AWS_REGIONS or something that is not an instance id."""
    if not regions:
        raise ValueError("choose at least one region")
    for region in regions:
        if region not in settings.AWS_REGIONS:
            raise ValueError(
                f"region {region!r} is not in AWS_REGIONS ({', '.join(settings.AWS_REGIONS)})"
            )
    for instance_id in instance_ids:
        if not INSTANCE_ID_RE.match(instance_id):
            raise ValueError(f"{instance_id!r} is not an EC2 instance id")


def preview(regions: list[str], tags: dict[str, str], instance_ids: list[str]) -> list[Found]:
    """The instances (not terminated) matching every tag and, if given, the ids, in each region.
    UpstreamError when a region cannot be read."""
    check_request(regions, instance_ids)
    reader = aws_reader()
    found: list[Found] = []
    for region in dict.fromkeys(regions):
        try:
            instances = reader.find_instances(
                region, tags=tags or None, instance_ids=instance_ids or None
            )
        except Exception as error:  # noqa: BLE001 - any AWS failure is reported, not traced
            raise UpstreamError(f"AWS {region}: {error}") from error
        known = set(
            Worker.objects.filter(
                region=region, instance_id__in=[i.instance_id for i in instances]
            ).values_list("instance_id", flat=True)
        )
        found += [Found(region, i, i.instance_id in known) for i in instances]
    return found


def import_workers(
    user, regions: list[str], tags: dict[str, str], instance_ids: list[str], actor: str = ""
) -> tuple[ActionEntry, list[Worker]]:
    """Create a worker for each new matching instance (idempotent); one audit entry
    (`actor` names a command's caller: fleet.actions.audit.record)."""
    created: list[Worker] = []

    def call() -> Outcome:
        found = preview(regions, tags, instance_ids)
        new = [f for f in found if not f.known]
        message = (
            f"Found {len(found)} instance(s) in {', '.join(dict.fromkeys(regions))}: imported "
            f"{len(new)} new, {len(found) - len(new)} already known."
        )
        return Outcome(
            ActionOutcome.SUCCEEDED if new else ActionOutcome.NOOP,
            message,
            lambda: _create(new, created),
        )

    target = _describe(regions, tags, instance_ids)
    entry = perform(user, ActionName.IMPORT_WORKERS, None, call, target=target, actor=actor)
    return entry, created


def auto_import() -> str:
    """The scheduled import (AUTO_IMPORT_TAGS): add new matching instances in every region,
    and mark workers whose instance EC2 no longer knows as terminated."""
    tags = settings.AUTO_IMPORT_TAGS
    if not tags:
        return "auto-import is off (AUTO_IMPORT_TAGS is empty)"
    entry, _ = import_workers(None, list(settings.AWS_REGIONS), tags, [])
    gone = _mark_gone()
    return f"{entry.message} {gone} worker(s) marked gone."


def _mark_gone() -> int:
    """Workers (not already terminated) whose instance EC2 does not return any more."""
    reader = aws_reader()
    marked = 0
    for region in settings.AWS_REGIONS:
        watched = list(Worker.objects.filter(region=region).exclude(status=WorkerStatus.TERMINATED))
        if not watched:
            continue
        try:
            alive = {
                i.instance_id
                for i in reader.find_instances(
                    region, instance_ids=[w.instance_id for w in watched]
                )
            }
        except Exception:  # noqa: BLE001 - a region that cannot be read marks nothing
            continue
        for worker in watched:
            if worker.instance_id not in alive:
                record(
                    None,
                    ActionName.IMPORT_WORKERS,
                    worker,
                    Outcome(
                        ActionOutcome.SUCCEEDED,
                        f"{worker}: the instance is gone from EC2; marked terminated.",
                        lambda worker=worker: _terminated(worker),
                    ),
                )
                marked += 1
    return marked


def _terminated(worker: Worker) -> list[str]:
    worker.status = WorkerStatus.TERMINATED
    worker.save(update_fields=["status"])
    return ["status"]


def _create(new: list[Found], created: list[Worker]) -> list[str]:
    rows = Worker.objects.bulk_create(
        Worker(region=f.region, instance_id=f.instance.instance_id, name=f.instance.name)
        for f in new
    )
    if rows and rows[0].pk is None:  # backends that return no ids
        rows = [Worker.objects.get(region=w.region, instance_id=w.instance_id) for w in rows]
    record_changes((w.pk, ChangeKind.CREATED, []) for w in rows)
    created.extend(rows)
    return []


def _describe(regions: list[str], tags: dict[str, str], instance_ids: list[str]) -> str:
    parts = [", ".join(dict.fromkeys(regions))]
    parts += [f"{key}={value}" for key, value in tags.items()]
    parts += instance_ids
    return " ".join(parts)
