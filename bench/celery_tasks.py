"""The Celery side of dispatch-bench: the same workloads as runfleet's, as Celery tasks.

Configured as our users run Celery: RabbitMQ broker, Postgres result backend (SQLAlchemy),
late acks, prefetch 1. Settings come from the environment set by celery_bench.py.
"""

import os
import subprocess

from celery import Celery

app = Celery(
    "runfleet_bench",
    broker=os.environ["BENCH_AMQP_URL"],
    backend=os.environ["BENCH_RESULT_DB"],
)
app.conf.update(
    task_acks_late=True,
    worker_prefetch_multiplier=1,
    task_default_queue=os.environ["BENCH_QUEUE"],
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_enable_remote_control=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
)


@app.task
def start(program, path):
    """Starts `program path` as runfleet does: a cleared environment, output captured."""
    done = subprocess.run(
        [program, path],
        env={"PATH": os.environ.get("PATH", "")},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return done.returncode


@app.task
def noop():
    """Nothing: the cost of Celery's own dispatch."""
    return None
