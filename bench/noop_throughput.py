#!/usr/bin/env python3
"""Quick throughput probe: N no-op runs through a running fleet, C concurrent submitters.

Prints a table: accepted/s (HTTP), finished/s (first submit -> last run final, from the
runs' own timestamps in Postgres via the API), and submit->started / submit->finished
percentiles. Talks only to the API given by --url (default http://127.0.0.1:8080).

  python3 bench/noop_throughput.py --script noop.sh --runs 1000 --clients 8
"""
import argparse
import concurrent.futures as cf
import json
import os
import statistics
import time
import urllib.request
from datetime import datetime


def call(url, method="GET", body=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if os.environ.get("RUNFLEET_TOKEN"):
        headers["Authorization"] = "Bearer " + os.environ["RUNFLEET_TOKEN"]
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.load(resp)


def ts(s):
    return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def pct(values, p):
    values = sorted(values)
    k = max(0, min(len(values) - 1, round(p / 100 * (len(values) - 1))))
    return values[k]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--script", default="noop.sh")
    ap.add_argument("--runs", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8)
    args = ap.parse_args()

    contents = {"noop.sh": "exit 0\n", "noop.py": "pass\n"}
    call(f"{args.url}/scripts", "POST", {"name": args.script, "content": contents[args.script]})

    t0 = time.time()
    with cf.ThreadPoolExecutor(args.clients) as pool:
        ids = list(pool.map(lambda _: call(f"{args.url}/runs", "POST", {"script": args.script})["id"],
                            range(args.runs)))
    accepted_s = time.time() - t0

    # Poll cheaply (two small list queries a round) so the probe does not eat the CPU it
    # measures; then read the runs back a page at a time.
    wanted, deadline = set(ids), time.time() + 600
    while time.time() < deadline:
        busy = [call(f"{args.url}/runs?script={args.script}&status={s}&limit=1")["runs"]
                for s in ("queued", "running")]
        if not any(busy):
            break
        time.sleep(0.25)
    runs, cursor = {}, ""
    while True:
        page = call(f"{args.url}/runs?script={args.script}&limit=500&cursor={cursor}")
        for r in page["runs"]:
            if r["id"] in wanted:
                runs[r["id"]] = r
        cursor = page["next_cursor"]
        if not cursor:
            break
    pending = wanted - set(runs)
    ok = sum(1 for r in runs.values() if r["status"] == "succeeded")
    first_submit = min(ts(r["submitted_at"]) for r in runs.values())
    last_finish = max(ts(r["finished_at"]) for r in runs.values())
    wait = [(ts(r["started_at"]) - ts(r["submitted_at"])) * 1000 for r in runs.values()]
    total = [(ts(r["finished_at"]) - ts(r["submitted_at"])) * 1000 for r in runs.values()]

    print(f"| workload | runs | clients | succeeded | lost | accepted/s | finished/s | "
          f"submit→started p50/p95/p99 ms | submit→finished p50/p95/p99 ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    print(f"| {args.script} | {args.runs} | {args.clients} | {ok} | {len(pending)} | "
          f"{args.runs / accepted_s:.0f} | {len(runs) / (last_finish - first_submit):.0f} | "
          f"{pct(wait, 50):.1f} / {pct(wait, 95):.1f} / {pct(wait, 99):.1f} | "
          f"{pct(total, 50):.1f} / {pct(total, 95):.1f} / {pct(total, 99):.1f} |")


if __name__ == "__main__":
    main()
