#!/usr/bin/env python3
"""Checks the Grafana dashboards in this directory, and the alert rules a Prometheus loaded.

  check.py [--prom URL] [--require-data] [--rules N] DASHBOARD.json...

Always: JSON; title, uid, schemaVersion, panels; unique panel ids and uids; gridPos on
every panel; unique refIds within a panel; every datasource is the `$datasource`
variable (never a hard-coded uid); every variable used in a query is defined.
With --prom: every panel query and every variable query runs on that Prometheus (its own
parser: a syntax or type error fails). With --require-data: a query that returns no
series fails too (run it against a Prometheus scraping a fleet under load).
With --rules N: that Prometheus must have loaded N rules, all evaluating without error.
Exit code 0 when all is well, 1 otherwise. Standard library only.
"""
import argparse
import json
import re
import sys
import urllib.parse
import urllib.request

# Grafana's built-in interval variables, as Prometheus durations.
MACROS = {"__rate_interval": "5m", "__interval": "1m", "__range": "1h", "__range_s": "3600"}
VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)")
DATASOURCE_VARS = {"$datasource", "${datasource}"}


def variables_in(expr):
    return {a or b for a, b in VAR.findall(expr)}


def substitute(expr):
    """Macros become durations; a dashboard variable matches anything."""
    expr = re.sub(r'(=~|!~)"([^"]*)"', lambda m: m.group(0) if "$" not in m.group(2) else f'{m.group(1)}".*"', expr)

    def one(m):
        name = m.group(1) or m.group(2)
        return MACROS.get(name, ".*")

    return VAR.sub(one, expr)


def walk(panels):
    for panel in panels or []:
        yield panel
        yield from walk(panel.get("panels"))


def query(prom, expr):
    url = f"{prom}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return json.load(r)
    except urllib.error.HTTPError as e:
        return json.load(e)


def check_dashboard(path, args, problems):
    def problem(msg):
        problems.append(f"{path}: {msg}")

    try:
        board = json.load(open(path))
    except (OSError, ValueError) as e:
        problem(f"cannot load: {e}")
        return 0
    for key in ("title", "uid", "schemaVersion", "panels"):
        if key not in board:
            problem(f"missing top-level '{key}'")
    variables = board.get("templating", {}).get("list", [])
    defined = {v.get("name") for v in variables} | set(MACROS)
    if not any(v.get("type") == "datasource" and v.get("query") == "prometheus" for v in variables):
        problem("no Prometheus datasource variable")
    exprs = []
    for v in variables:
        if v.get("type") == "query":
            q = v.get("query")
            q = q.get("query", "") if isinstance(q, dict) else q or ""
            m = re.fullmatch(r"\s*label_values\((.*),\s*(\w+)\)\s*", q)
            exprs.append((f"variable {v['name']}", m.group(1) if m else q))
            if v.get("datasource", {}).get("uid") not in DATASOURCE_VARS:
                problem(f"variable {v['name']}: datasource is not $datasource")
    ids = set()
    for panel in walk(board.get("panels")):
        where = f"panel {panel.get('id')} '{panel.get('title', '')}'"
        if panel.get("id") in ids:
            problem(f"{where}: duplicate panel id")
        ids.add(panel.get("id"))
        if "gridPos" not in panel:
            problem(f"{where}: no gridPos")
        if panel.get("type") == "row":
            continue
        if panel.get("datasource", {}).get("uid") not in DATASOURCE_VARS:
            problem(f"{where}: datasource is not $datasource")
        refs = [t.get("refId") for t in panel.get("targets", [])]
        if len(refs) != len(set(refs)):
            problem(f"{where}: duplicate refId")
        if not refs:
            problem(f"{where}: no queries")
        for t in panel.get("targets", []):
            if t.get("datasource", {}).get("uid") not in DATASOURCE_VARS:
                problem(f"{where} {t.get('refId')}: datasource is not $datasource")
            exprs.append((f"{where} {t.get('refId')}", t.get("expr", "")))
    for where, expr in exprs:
        undefined = variables_in(expr) - defined
        if undefined:
            problem(f"{where}: undefined variables {sorted(undefined)}")
        if not expr.strip():
            problem(f"{where}: empty query")
            continue
        if args.prom:
            answer = query(args.prom, substitute(expr))
            if answer.get("status") != "success":
                problem(f"{where}: Prometheus refused it: {answer.get('error')}\n    {expr}")
            elif args.require_data and not answer["data"]["result"]:
                problem(f"{where}: no data\n    {substitute(expr)}")
    return len(exprs)


def check_rules(prom, expected, problems):
    with urllib.request.urlopen(f"{prom}/api/v1/rules", timeout=30) as r:
        groups = json.load(r)["data"]["groups"]
    rules = [rule for g in groups for rule in g["rules"]]
    if len(rules) != expected:
        problems.append(f"rules: Prometheus loaded {len(rules)} rules, expected {expected}")
    for rule in rules:
        if rule.get("health") != "ok":
            problems.append(f"rule {rule['name']}: {rule.get('health')} {rule.get('lastError', '')}")
    return len(rules)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prom")
    parser.add_argument("--require-data", action="store_true")
    parser.add_argument("--rules", type=int)
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    problems = []
    for path in args.files:
        n = check_dashboard(path, args, problems)
        print(f"{path}: {n} queries checked")
    if args.rules is not None:
        n = check_rules(args.prom, args.rules, problems)
        print(f"rules: {n} loaded, evaluated on live data")
    for p in problems:
        print(f"ERROR {p}")
    print(f"{len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
