#!/usr/bin/env python3
"""Producer memory, alone in its process: RSS idle, then its peak under a submit load;
and the idle RSS of a consumer and a scheduler beside it.

Starts release `runfleet-producer`, `runfleet-consumer` and `runfleet-scheduler` on
127.0.0.1 with their own database and RabbitMQ vhost (removed at the end), waits until
they are ready, reads each one's VmRSS after they have idled; stops the consumer; then
makes a load for `--seconds`: `--clients` threads submitting single `POST /runs`, one
thread submitting `POST /runs/batch` of 1000, `--streams` open `GET /runs/{id}/events`
streams, and listing runs; reads VmHWM (peak RSS) and VmRSS after. No consumer runs, so
every run stays queued (the broker keeps the messages).

    cargo build --release --bins && python3 bench/producer_rss.py [--seconds 30]
        [--clients 8] [--streams 50] [--frame-max N]
"""
import argparse
import http.client
import json
import os
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PG = "postgres://postgres@127.0.0.1:5432"


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/{pid}/status")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def as_root(*cmd):
    prefix = [] if os.geteuid() == 0 else ["sudo"]
    subprocess.run(prefix + list(cmd), check=True, stdout=subprocess.DEVNULL)


class Api:
    def __init__(self, port, token):
        self.port, self.token = port, token

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        headers = {"Authorization": f"Bearer {self.token}"}
        data = None
        if body is not None:
            data = json.dumps(body)
            headers["Content-Type"] = "application/json"
        conn.request(method, path, data, headers)
        resp = conn.getresponse()
        payload = resp.read()
        conn.close()
        return resp.status, json.loads(payload) if payload else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=int, default=30)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--streams", type=int, default=50)
    ap.add_argument("--frame-max", type=int, default=0,
                    help="put frame_max=N in amqp.url (0: the components' own choice)")
    args = ap.parse_args()

    release = os.path.join(ROOT, "target", "release")
    binary = os.path.join(release, "runfleet-producer")
    for b in ("runfleet-producer", "runfleet-consumer", "runfleet-scheduler"):
        if not os.access(os.path.join(release, b), os.X_OK):
            sys.exit(f"error: {b} is not built: run cargo build --release --bins")
    ident = f"{int(time.time())}{os.getpid()}"
    db, vhost = f"rf_rss_{ident}", f"rf-rss-{ident}"
    work = tempfile.mkdtemp()
    subprocess.run(["psql", f"{PG}/postgres", "-qc", f"CREATE DATABASE {db}"], check=True)
    as_root("rabbitmqctl", "-q", "add_vhost", vhost)
    as_root("rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
    port = free_port()
    token = "rfb_" + secrets.token_hex(32)
    env = dict(os.environ,
               RUNFLEET_DATABASE__URL=f"{PG}/{db}",
               RUNFLEET_AMQP__URL=f"amqp://guest:guest@127.0.0.1:5672/{vhost}"
               + (f"?frame_max={args.frame_max}" if args.frame_max else ""),
               RUNFLEET_HTTP__LISTEN=f"127.0.0.1:{port}",
               RUNFLEET_AUTH__BOOTSTRAP_TOKEN=token,
               RUNFLEET_LOG__LEVEL="warn")
    subprocess.run([binary, "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
    log = open(os.path.join(work, "producer.log"), "w")
    producer = subprocess.Popen([binary], env=env, stderr=log)
    stop = threading.Event()
    others = []
    try:
        api = Api(port, token)
        for _ in range(100):
            try:
                if api.call("GET", "/ready")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.2)
        else:
            sys.exit("error: the producer did not get ready")
        status, _ = api.call("POST", "/scripts", {"name": "noop.sh", "content": "exit 0\n"})
        assert status in (200, 201), status
        for name, extra in (("consumer", {"RUNFLEET_CONSUMER__WORK_DIR": os.path.join(work, "w"),
                                          "RUNFLEET_VENV__CACHE_DIR": os.path.join(work, "v")}),
                            ("scheduler", {})):
            side_port = free_port()
            side_env = dict(env, RUNFLEET_HTTP__LISTEN=f"127.0.0.1:{side_port}", **extra)
            side = subprocess.Popen([os.path.join(release, f"runfleet-{name}")], env=side_env,
                                    stderr=open(os.path.join(work, f"{name}.log"), "w"))
            others.append((name, side, side_port))
        for name, side, side_port in others:
            for _ in range(100):
                try:
                    c = http.client.HTTPConnection("127.0.0.1", side_port, timeout=5)
                    c.request("GET", "/ready")
                    if c.getresponse().status == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.2)
            else:
                sys.exit(f"error: the {name} did not get ready")
        time.sleep(5)
        idle_kib = status_kib(producer.pid, "VmRSS")
        side_idle = {name: status_kib(side.pid, "VmRSS") for name, side, _ in others}
        for _, side, _ in others:
            side.terminate()
            side.wait(timeout=30)

        submitted = [0]
        lock = threading.Lock()

        def single():
            while not stop.is_set():
                s, _ = api.call("POST", "/runs", {"script": "noop.sh"})
                assert s == 202, s
                with lock:
                    submitted[0] += 1

        def batch():
            while not stop.is_set():
                s, body = api.call("POST", "/runs/batch", {"runs": [{"script": "noop.sh"}] * 1000})
                assert s == 202, (s, body)
                with lock:
                    submitted[0] += body["created"]
                api.call("GET", "/runs?limit=500")

        def stream(run_id):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            conn.request("GET", f"/runs/{run_id}/events", headers={"Authorization": f"Bearer {token}"})
            resp = conn.getresponse()
            assert resp.status == 200, resp.status
            while not stop.is_set():
                if not resp.fp.readline():
                    break
            conn.close()

        _, first = api.call("POST", "/runs/batch", {"runs": [{"script": "noop.sh"}] * args.streams})
        threads = [threading.Thread(target=single) for _ in range(args.clients)]
        threads.append(threading.Thread(target=batch))
        threads += [threading.Thread(target=stream, args=(i,), daemon=True) for i in first["ids"]]
        started = time.time()
        for t in threads:
            t.start()
        time.sleep(args.seconds)
        stop.set()
        for t in threads[: args.clients + 1]:
            t.join()
        elapsed = time.time() - started
        peak_kib = status_kib(producer.pid, "VmHWM")
        after_kib = status_kib(producer.pid, "VmRSS")
        print(f"producer_rss: {args.seconds} s of load, {args.clients} single-run clients, "
              f"1 batch client (1000 a request), {args.streams} open event streams, "
              f"frame_max {args.frame_max or 'default'}\n")
        print("| figure (producer unless named) | value |")
        print("| --- | --- |")
        print(f"| RSS idle (5 s after ready) | {idle_kib / 1024:.1f} MiB |")
        print(f"| RSS peak under load (VmHWM) | {peak_kib / 1024:.1f} MiB |")
        print(f"| RSS after the load | {after_kib / 1024:.1f} MiB |")
        for name, kib in side_idle.items():
            print(f"| {name} RSS idle (5 s after ready) | {kib / 1024:.1f} MiB |")
        print(f"| runs accepted | {submitted[0]} ({submitted[0] / elapsed:.0f}/s) |")
    finally:
        stop.set()
        for _, side, _ in others:
            if side.poll() is None:
                side.kill()
        producer.terminate()
        try:
            producer.wait(timeout=30)
        except subprocess.TimeoutExpired:
            producer.kill()
        subprocess.run(["psql", f"{PG}/postgres", "-qc", f"DROP DATABASE IF EXISTS {db} WITH (FORCE)"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            as_root("rabbitmqctl", "-q", "delete_vhost", vhost)
        except subprocess.CalledProcessError:
            pass


if __name__ == "__main__":
    main()
