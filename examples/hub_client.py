#!/usr/bin/env python3
"""A client of the FastAPI automation hub, as teams wrote them, pointed at runfleet.

The only change from the hub client is the Authorization header (RUNFLEET_TOKEN): it
submits with POST /runs/runs, polls GET /runs/runs/{run_id} until the run is completed or
failed, then finds it in GET /runs/runs. Standard library only.

    RUNFLEET_TOKEN=... examples/hub_client.py --url http://127.0.0.1:8080 \
        --script fetch_rss.py --param url=https://example.org/feed.xml

Prints the finished run as JSON; exits 0 when it completed, 1 when it failed, 2 on a
client or API error.
"""

import argparse
import json
import os
import sys
import time
import urllib.error
import urllib.request


def call(base, method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    token = os.environ.get("RUNFLEET_TOKEN")
    if token:
        # The one line the hub's clients did not have.
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)
    except urllib.error.HTTPError as e:
        sys.exit(f"{method} {path} answered {e.code}: {e.read().decode(errors='replace')}")
    except urllib.error.URLError as e:
        sys.exit(f"cannot reach {base}: {e.reason}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--script", required=True)
    ap.add_argument("--param", action="append", default=[], metavar="KEY=VALUE")
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()
    params = dict(p.split("=", 1) for p in args.param)

    run = call(args.url, "POST", "/runs/runs", {"script_name": args.script, "parameters": params})
    run_id = run["run_id"]
    deadline = time.monotonic() + args.timeout
    while run["status"] not in ("completed", "failed"):
        if time.monotonic() > deadline:
            sys.exit(f"run {run_id} still {run['status']} after {args.timeout} s")
        time.sleep(0.2)
        run = call(args.url, "GET", f"/runs/runs/{run_id}")

    listed = call(args.url, "GET", f"/runs/runs?status={run['status']}&script_name={args.script}")
    if not any(r["run_id"] == run_id for r in listed["runs"]):
        sys.exit(f"run {run_id} is {run['status']} but GET /runs/runs does not list it")
    print(json.dumps(run))
    return 0 if run["status"] == "completed" else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except SystemExit as e:
        if isinstance(e.code, str):
            print(e.code, file=sys.stderr)
            sys.exit(2)
        raise
