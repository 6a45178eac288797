"""Runs one workload on Celery and prints its figures as one JSON line (dispatch-bench
calls this; it can also be run by hand).

    bench/.venv-celery/bin/python bench/celery_bench.py --workload shell --runs 2000 \
        --concurrency 2 --program bash --file /tmp/bare.sh

A Celery 5 worker (prefork, --concurrency C, acks_late, prefetch 1) takes tasks from a
queue of its own on the local RabbitMQ and writes results to a database of its own on the
local Postgres; both are removed at the end. finished/s runs from the first submit to the
last result row's date_done. CPU per task is that of the worker and its pool processes
(their own, not the programs they start), Postgres, RabbitMQ and this client.
"""

import argparse
import datetime
import json
import os
import signal
import subprocess
import sys
import time
import uuid

import psycopg2

HERE = os.path.dirname(os.path.abspath(__file__))
TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid):
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces: fields start after its closing parenthesis.
        return f.read().rsplit(")", 1)[1].split()


def cpu_seconds(pid):
    """utime + stime of the process itself (not of children it waited for)."""
    try:
        fields = stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICKS


def pids():
    return [int(p) for p in os.listdir("/proc") if p.isdigit()]


def comm(pid):
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return ""


def cpu_of_names(prefixes):
    return sum(cpu_seconds(p) for p in pids() if comm(p).startswith(prefixes))


def tree(root):
    """root and its direct children (the prefork pool)."""
    out = [root]
    for p in pids():
        try:
            if int(stat_fields(p)[1]) == root:
                out.append(p)
        except (OSError, IndexError, ValueError):
            pass
    return out


def status_kib(pid, key):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_snapshot(worker_pid):
    """CPU seconds now: the worker and its pool, this client, Postgres, RabbitMQ."""
    return (
        sum(cpu_seconds(p) for p in tree(worker_pid)),
        cpu_seconds(os.getpid()),
        cpu_of_names(("postgres",)),
        cpu_of_names(("beam.smp", "erl_child_setup", "epmd")),
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--workload", choices=["shell", "script", "noop"], required=True)
    ap.add_argument("--runs", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=2)
    ap.add_argument("--program", default="bash")
    ap.add_argument("--file", default="")
    ap.add_argument("--amqp-url", default="amqp://guest:guest@127.0.0.1:5672/%2F")
    ap.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432")
    args = ap.parse_args()

    tag = uuid.uuid4().hex[:10]
    db = f"runfleet_celery_{tag}"
    queue = f"runfleet-celery-bench-{tag}"
    admin = psycopg2.connect(f"{args.pg}/postgres")
    admin.autocommit = True
    admin.cursor().execute(f'CREATE DATABASE "{db}"')
    os.environ.update(
        BENCH_AMQP_URL=args.amqp_url,
        BENCH_RESULT_DB=f"db+{args.pg.replace('postgresql://', 'postgresql+psycopg2://')}/{db}",
        BENCH_QUEUE=queue,
    )
    sys.path.insert(0, HERE)
    import celery_tasks  # noqa: E402 (needs the environment above)

    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "celery_tasks", "worker", "--pool", "prefork",
         "--concurrency", str(args.concurrency), "--prefetch-multiplier", "1", "-Q", queue,
         "--without-gossip", "--without-mingle", "--without-heartbeat", "--loglevel", "WARNING"],
        cwd=HERE,
        env=dict(os.environ, PYTHONPATH=HERE),
    )
    try:
        if args.workload == "noop":
            task, task_args = celery_tasks.noop, ()
        else:
            task, task_args = celery_tasks.start, (args.program, args.file)
        # Warm-up: the worker consumes and the result table exists.
        for _ in range(args.concurrency * 2):
            task.apply_async(task_args).get(timeout=120)
        results = psycopg2.connect(f"{args.pg}/{db}")
        results.autocommit = True
        cur = results.cursor()
        cur.execute("DELETE FROM celery_taskmeta")

        before = cpu_snapshot(worker.pid)
        first_submit = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
        started = time.monotonic()
        for _ in range(args.runs):
            task.apply_async(task_args, ignore_result=False)
        accepted_s = time.monotonic() - started
        while True:
            cur.execute("SELECT count(*), max(date_done) FROM celery_taskmeta WHERE status = 'SUCCESS'")
            done, last = cur.fetchone()
            if done >= args.runs:
                break
            if time.monotonic() - started > 900:
                raise SystemExit(f"celery: only {done} of {args.runs} tasks done in 900 s")
            time.sleep(0.25)
        wall = time.monotonic() - started
        span = (last - first_submit).total_seconds()
        if not 0 < span <= wall:
            span = wall  # date_done in another clock or zone: fall back to the poll's time
        after = cpu_snapshot(worker.pid)
        split = [(a - b) * 1000 / args.runs for a, b in zip(after, before)]
        print(json.dumps({
            "workload": args.workload,
            "runs": args.runs,
            "accepted_per_s": args.runs / accepted_s,
            "finished_per_s": args.runs / span,
            "cpu_ms_per_run": sum(split),
            "cpu_split_ms": split,
            "worker_rss_mib": sum(status_kib(p, "VmHWM:") for p in tree(worker.pid)) / 1024,
        }), flush=True)
        results.close()
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            worker.kill()
        with celery_tasks.app.connection_for_write() as conn:
            conn.default_channel.queue_delete(queue)
        # FORCE: the result backend's pooled connections may still be open.
        admin.cursor().execute(f'DROP DATABASE IF EXISTS "{db}" WITH (FORCE)')


if __name__ == "__main__":
    main()
