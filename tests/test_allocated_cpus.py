"""vCPUs allocated to running nodes (system_stats dominfo.allocated_cpus), end to end: read per
compute host and in total, shown on the worker page and exported in the CSV."""

import csv
import io

from fleet.collection.collect import collect
from fleet.models import Worker
from tests.fleet_fixtures import running


def test_allocated_vcpus_reach_the_worker_page_and_the_csv(
    fleet_workers, fleet_settings, client, viewer
):
    collect([w.pk for w in running(fleet_settings, fleet_workers)], kind="full")
    worker = Worker.objects.filter(nodes_running__gt=0).first()

    per_host = [host["allocated_cpus"] for host in worker.compute_hosts]
    # The simulated CML gives each running node one vCPU, spread over its compute hosts.
    assert worker.allocated_cpus == sum(per_host) == worker.nodes_running

    client.force_login(viewer)
    page = client.get(worker.get_absolute_url()).content.decode()
    assert f"<dt>vCPUs allocated</dt><dd>{worker.allocated_cpus}</dd>" in page
    export = client.get("/", {"q": worker.instance_id, "format": "csv"}).content.decode()
    header, row = list(csv.reader(io.StringIO(export, newline="")))
    assert dict(zip(header, row, strict=True))["allocated_cpus"] == str(worker.allocated_cpus)
