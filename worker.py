"""`python worker.py`: serve every queue, run the scheduler for delayed retries, and the
recovery sweep. SIGTERM finishes the job in hand, then exits."""

from app import create_app
from app.jobs.runner import run_worker, wait_for_redis

if __name__ == "__main__":
    app = create_app()
    wait_for_redis(app)
    run_worker(app)
