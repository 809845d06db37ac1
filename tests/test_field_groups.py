"""One declaration per field group: every Worker field is in exactly one, and CML's go away
with CML."""

from collections import Counter

from fleet.collection.derive import WorkerObservation, derive_changes
from fleet.collection.sources.aws import InstanceObservation
from fleet.models import Worker
from fleet.models.field_groups import CML, CML_STATS, LICENCE, OBSERVED, SET_BY_PEOPLE


def test_every_worker_field_belongs_to_exactly_one_group():
    fields = {f.name for f in Worker._meta.concrete_fields} - {"id"}
    grouped = Counter(name for group in (*SET_BY_PEOPLE, *OBSERVED) for name in group.fields)
    assert set(grouped) == fields, (
        f"in no group: {sorted(fields - set(grouped))}; not fields: {sorted(set(grouped) - fields)}"
    )
    assert [name for name, count in grouped.items() if count > 1] == []


def test_every_cml_field_is_cleared_when_the_worker_stops():
    """A stopped worker shows no CML figures: each goes back to its default, so a CML figure
    (in a CML group, or named cml_*) can never be left stale on a stopped worker."""
    worker = Worker(name="w", region="us-east-1", instance_id="i-0123456789abcdef0")
    concrete = {field.name: field for field in Worker._meta.concrete_fields}
    cml_fields = {*CML.fields, *CML_STATS.fields, *LICENCE.fields}
    cml_fields |= {name for name in concrete if name.startswith("cml_")}
    defaults = {name: getattr(worker, name) for name in cml_fields}
    for name in cml_fields:
        setattr(worker, name, _some_value(concrete[name]))
    worker.status, worker.service_status, worker.license_state = "running", "available", "licensed"
    worker.cml_endpoint = "https://203.0.113.7"
    stopped = InstanceObservation(instance_id=worker.instance_id, found=True, state="stopped")

    changes = derive_changes(worker, WorkerObservation(aws=stopped), "https://{public_ip}")

    for name in cml_fields:
        assert changes.get(name, getattr(worker, name)) == defaults[name], name


def _some_value(field):
    return {
        "CharField": "2.9.1",
        "BooleanField": True,
        "FloatField": 42.0,
        "BigIntegerField": 7,
        "PositiveIntegerField": 7,
        "JSONField": [{"hostname": "x"}],
    }[field.get_internal_type()]
