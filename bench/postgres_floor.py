#!/usr/bin/env python3
"""Postgres CPU per run for the consumer's two writes (claim, finish), one run per
statement as the consumer does them, against the same writes grouped many runs to a
statement: how much of Postgres's share of the dispatch cost is per statement and per
commit, and how much is per row.

Makes its own database (all migrations applied, 400,000 queued runs), runs each variant
with pgbench (prepared statements, 2 clients, fsync and synchronous_commit as the server
has them), reads the CPU of every postgres process from /proc between second 3 and 12,
prints a table and drops the database.

The claim is the consumer's claim statement (`run_state::claim`) with the run found by
number through a side table; the finish is `run_state::finish` for a succeeded run
without a result or output.

    python3 bench/postgres_floor.py [--host 127.0.0.1] [--user postgres]
"""
import argparse
import os
import subprocess
import tempfile
import time

CLAIM = """UPDATE runs r SET status = 'running', started_at = now(), worker = 'w',
    heartbeat_at = now() FROM scripts s, ids i
 WHERE i.n BETWEEN :n::bigint AND :n::bigint + :k::int - 1 AND r.id = i.id
   AND r.attempt = 1 AND r.status = 'queued'
   AND s.name = r.script_name AND s.version = r.script_version
RETURNING r.script_name, s.language, s.content, s.sha256, r.parameters, r.timeout_seconds,
    r.submitted_at, s.requirements, r.env, r.traceparent, r.limits, r.secrets;"""

FINISH = """WITH moved AS (
    UPDATE runs SET status = 'succeeded', finished_at = now(), exit_code = 0 FROM ids i
     WHERE i.n BETWEEN :n::bigint AND :n::bigint + :k::int - 1 AND runs.id = i.id
       AND attempt = 1 AND status = 'running'
 RETURNING runs.id, status, worker, started_at
), a AS (
    INSERT INTO run_attempts (run_id, attempt, status, worker, started_at, exit_code)
    SELECT id, 1, status, worker, started_at, 0 FROM moved
    ON CONFLICT (run_id, attempt) DO NOTHING
), l AS (
    INSERT INTO run_logs (run_id, attempt, stdout, stderr)
    SELECT id, 1, '', '' FROM moved ON CONFLICT (run_id, attempt) DO NOTHING
), g AS (
    DELETE FROM run_log_chunks c USING moved WHERE c.run_id = moved.id AND c.attempt = 1
) SELECT status FROM moved;"""


def one_line(sql):
    # pgbench reads one SQL command per line.
    return " ".join(sql.split())


# (name, runs per pgbench transaction, script)
VARIANTS = [
    ("numbering only (subtracted below)", 1,
     ["\\set k 1", "SELECT nextval('seq') AS n \\gset"]),
    ("claim and finish, each its own commit (as the consumer does)", 1,
     ["\\set k 1", "SELECT nextval('seq') AS n \\gset", CLAIM, FINISH]),
    ("claim and finish in one transaction", 1,
     ["\\set k 1", "SELECT nextval('seq') AS n \\gset", "BEGIN;", CLAIM, FINISH, "COMMIT;"]),
    ("20 runs per claim and per finish", 20,
     ["\\set k 20", "SELECT nextval('seq20') AS n \\gset", CLAIM, FINISH]),
]

SETUP = """
INSERT INTO scripts (name, version, language, content, sha256, fingerprint)
    VALUES ('noop', 1, 'shell', 'exit 0', 'x', 'f');
CREATE TABLE ids (n bigint PRIMARY KEY, id uuid NOT NULL);
INSERT INTO ids SELECT g, gen_random_uuid() FROM generate_series(1, 400000) g;
INSERT INTO runs (id, script_name, script_version, queue, status, triggered_by,
                  timeout_seconds, published_at)
    SELECT id, 'noop', 1, 'default', 'queued', 'api', 60, now() FROM ids;
CREATE SEQUENCE seq;
CREATE SEQUENCE seq20 INCREMENT 20 START 200001;
"""


def postgres_cpu_seconds():
    ticks = 0
    for pid in subprocess.run(["pgrep", "-u", "postgres"], capture_output=True,
                              text=True).stdout.split():
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            ticks += int(fields[11]) + int(fields[12])
        except (FileNotFoundError, ProcessLookupError):
            pass
    return ticks / os.sysconf("SC_CLK_TCK")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--user", default="postgres")
    args = ap.parse_args()
    db = f"rf_floor_{os.getpid()}"
    base = ["-h", args.host, "-U", args.user]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    migrations = sorted(os.path.join(root, "migrations", f)
                        for f in os.listdir(os.path.join(root, "migrations"))
                        if f.endswith(".sql"))
    psql = ["psql", *base, "-q", "-v", "ON_ERROR_STOP=1"]
    subprocess.run([*psql, "-c", f"CREATE DATABASE {db}"], check=True)
    try:
        for m in migrations:
            subprocess.run([*psql, "-d", db, "-f", m], check=True)
        subprocess.run([*psql, "-d", db, "-c", SETUP], check=True)
        # Not in the block above: VACUUM cannot run inside a transaction.
        subprocess.run([*psql, "-d", db, "-c", "VACUUM ANALYZE"], check=True)
        settings = subprocess.run(
            [*psql, "-d", db, "-Atc", "SELECT current_setting('fsync') || ' / ' || "
             "current_setting('synchronous_commit')"],
            check=True, capture_output=True, text=True).stdout.strip()
        rows = []
        for name, per_txn, lines in VARIANTS:
            with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as f:
                f.write("\n".join(one_line(line) for line in lines) + "\n")
                script = f.name
            bench = subprocess.Popen(
                ["pgbench", *base, "-n", "-M", "prepared", "-c", "2", "-j", "1",
                 "-T", "14", "-f", script, db],
                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            time.sleep(3)
            cpu0, t0 = postgres_cpu_seconds(), time.monotonic()
            time.sleep(9)
            cpu1, t1 = postgres_cpu_seconds(), time.monotonic()
            out, _ = bench.communicate()
            os.unlink(script)
            tps = [line for line in out.splitlines() if line.startswith("tps = ")]
            if bench.returncode != 0 or not tps:
                raise SystemExit(f"pgbench failed for '{name}':\n{out}")
            txn_per_s = float(tps[0].split()[2])
            cores = (cpu1 - cpu0) / (t1 - t0)
            rows.append((name, txn_per_s * per_txn, cores, txn_per_s))
        numbering = rows[0][2] / rows[0][3]  # CPU seconds per nextval transaction
        print(f"Postgres CPU per run, fsync / synchronous_commit = {settings}, "
              "2 pgbench clients, prepared statements\n")
        print("| variant | runs/s | postgres cores | postgres CPU ms/run |")
        print("| --- | --- | --- | --- |")
        for name, runs, cores, txn in rows[1:]:
            per_run = (cores - numbering * txn) / runs * 1000
            print(f"| {name} | {runs:.0f} | {cores:.2f} | {per_run:.3f} |")
    finally:
        subprocess.run([*psql, "-c", f"DROP DATABASE IF EXISTS {db}"], check=False)


if __name__ == "__main__":
    main()
