"""`python worker.py`: run every queue's workers, RQ's scheduler for delayed retries, and the
recovery sweep; SIGTERM lets the jobs in hand finish first.

`python worker.py --queues a,b` runs a single worker process for those queues instead;
`python worker.py --slot a,b*N --slot c*M` one process of N worker threads for a and b, M for c.
"""

import argparse
import sys

from app import create_app
from app.config import InsecureSecretKey
from app.jobs.runner import run_worker, wait_for_redis
from app.jobs.supervisor import run_supervisor, stop_with_parent
from app.jobs.threaded import WorkerThreads, engine_options_for, parse_slot, slot_threads
from app.settings import InvalidSettings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--queues", help="comma-separated queue names: one worker process for them")
    parser.add_argument(
        "--slot", action="append", type=parse_slot, help="queues*threads: worker threads in this process"
    )
    parser.add_argument("--no-recovery", action="store_true", help="leave the recovery sweep to others")
    parser.add_argument("--no-scheduler", action="store_true", help="leave RQ's scheduler to others")
    parser.add_argument("--parent", type=int, help="stop when this process (the supervisor) dies")
    args = parser.parse_args()
    if args.parent:
        stop_with_parent(args.parent)
    try:
        overrides = (
            {"SQLALCHEMY_ENGINE_OPTIONS": engine_options_for(slot_threads(args.slot))} if args.slot else None
        )
        app = create_app(overrides)
    except (InsecureSecretKey, InvalidSettings) as exc:
        sys.exit(f"worker refused to start: {exc}")
    wait_for_redis(app)
    if args.slot:
        WorkerThreads(app, args.slot).run(recovery=not args.no_recovery, scheduling=not args.no_scheduler)
    elif args.queues:
        run_worker(
            app,
            tuple(args.queues.split(",")),
            recovery=not args.no_recovery,
            scheduling=not args.no_scheduler,
        )
    else:
        run_supervisor(app)


if __name__ == "__main__":
    main()
