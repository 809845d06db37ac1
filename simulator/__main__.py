"""Run a simulated fleet in its own process: `python -m simulator --workers 100`.

Prints one JSON line, {"environment": {...}, "instances": [...]}, then serves until stdin closes,
or SIGINT/SIGTERM arrives. Benchmarks use it so the simulator's CPU is not counted as ours; AWS
(moto) runs in a further process of its own, as it would on other machines.
"""

import argparse
import json
import signal
import sys
import threading
from dataclasses import asdict

from simulator.fleet import SimulatedFleet


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m simulator")
    parser.add_argument("--workers", type=int, default=24)
    parser.add_argument("--regions", default="us-east-1,eu-west-1,ap-southeast-2")
    parser.add_argument("--stopped", type=int, default=3)
    parser.add_argument("--latency-ms", type=int, default=0)
    parser.add_argument("--drift-seconds", type=float, default=0, help="0: no drift")
    args = parser.parse_args()
    if args.workers < 1 or args.latency_ms < 0:
        parser.error("--workers must be at least 1 and --latency-ms not negative")

    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    with SimulatedFleet(
        workers=args.workers,
        regions=[r for r in args.regions.split(",") if r],
        stopped=args.stopped,
        latency_ms=args.latency_ms,
        aws_process=True,
    ) as fleet:
        print(
            json.dumps(
                {
                    "environment": fleet.environment(),
                    "instances": [asdict(instance) for instance in fleet.instances],
                }
            ),
            flush=True,
        )
        threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
        if args.drift_seconds > 0:
            threading.Thread(
                target=fleet.run_drift, args=(args.drift_seconds, done), daemon=True
            ).start()
        done.wait()


if __name__ == "__main__":
    main()
