#!/usr/bin/env python3
"""Asserts the structure users rely on in a rendered runfleet chart.

  check_rendered.py RENDERED.yaml VALUES_NAME [--rules-out FILE]

VALUES_NAME is the values file the render used ("default" or a file name in ci/); some
checks depend on it. --rules-out writes the PrometheusRule's groups as a rule file for
promtool. Exit code 0 when every check holds; each failure is printed.
"""
import argparse
import re
import sys

import yaml

CACHE_DIR = "/var/lib/runfleet/venvs"
# user:password@ in a URL: a credential that must never be rendered.
CREDENTIAL = re.compile(r"://[^/\s:@\"']+:[^/\s@\"']+@")

failures = []


def check(ok, message):
    if not ok:
        failures.append(message)
    return ok


def env_of(container):
    return {e["name"]: e for e in container.get("env", [])}


def pod_spec(doc):
    return doc["spec"]["template"]["spec"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("rendered")
    parser.add_argument("values_name")
    parser.add_argument("--rules-out")
    args = parser.parse_args()
    text = open(args.rendered).read()
    docs = [d for d in yaml.safe_load_all(text) if d]
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d["kind"], []).append(d)
    name = args.values_name

    # No secret value anywhere: no Secret objects, no credentials in URLs.
    check("Secret" not in by_kind, "the chart rendered a Secret; credentials must come from existing Secrets")
    check(not CREDENTIAL.search(text), f"a URL with credentials is in the rendered output: {CREDENTIAL.search(text)}")

    workloads = by_kind.get("Deployment", []) + by_kind.get("StatefulSet", []) + by_kind.get("Job", [])
    for w in workloads:
        where = f"{w['kind']} {w['metadata']['name']}"
        spec = pod_spec(w)
        check(spec.get("securityContext", {}).get("runAsNonRoot") is True, f"{where}: pod not runAsNonRoot")
        for c in spec["containers"]:
            sc = c.get("securityContext", {})
            check(sc.get("readOnlyRootFilesystem") is True, f"{where}: root filesystem writable")
            check(sc.get("allowPrivilegeEscalation") is False, f"{where}: privilege escalation allowed")
            check("ALL" in sc.get("capabilities", {}).get("drop", []), f"{where}: capabilities not dropped")
            res = c.get("resources", {})
            check(res.get("requests") and res.get("limits"), f"{where}: no resource requests and limits")
            env = env_of(c)
            for var in ("RUNFLEET_DATABASE__URL", "RUNFLEET_AMQP__URL"):
                check("secretKeyRef" in env.get(var, {}).get("valueFrom", {}), f"{where}: {var} not from a Secret")
            if "RUNFLEET_PIP__INDEX_URL" in env and name == "monitoring-values.yaml":
                check("secretKeyRef" in env["RUNFLEET_PIP__INDEX_URL"].get("valueFrom", {}),
                      f"{where}: the pip index URL with credentials is not from its Secret")

    # Producer: probes on /ready and /health.
    producers = [d for d in by_kind.get("Deployment", []) if d["metadata"]["name"].endswith("-producer")]
    if check(len(producers) == 1, "no producer Deployment"):
        c = pod_spec(producers[0])["containers"][0]
        check(c["readinessProbe"]["httpGet"]["path"] == "/ready", "producer readiness is not /ready")
        check(c["livenessProbe"]["httpGet"]["path"] == "/health", "producer liveness is not /health")
        bootstrap = env_of(c).get("RUNFLEET_AUTH__BOOTSTRAP_TOKEN", {})
        check("secretKeyRef" in bootstrap.get("valueFrom", {}), "the bootstrap token is not from a Secret")
        check("RUNFLEET_AUTH__DISABLED" not in env_of(c), "auth is disabled in a shipped values file")
    schedulers = [d for d in by_kind.get("Deployment", []) if d["metadata"]["name"].endswith("-scheduler")]
    if check(len(schedulers) == 1, "no scheduler Deployment") and name == "default":
        check(schedulers[0]["spec"]["replicas"] == 2, "the scheduler does not run 2 replicas by default")

    # Consumers: StatefulSets with the venv cache volume mounted at the cache dir.
    shared = name == "rwx-values.yaml"
    pvcs = {p["metadata"]["name"]: p for p in by_kind.get("PersistentVolumeClaim", [])}
    consumers = {s["metadata"]["name"]: s for s in by_kind.get("StatefulSet", [])}
    check(consumers, "no consumer StatefulSet")
    for sts_name, sts in consumers.items():
        where = f"StatefulSet {sts_name}"
        spec = pod_spec(sts)
        c = spec["containers"][0]
        env = env_of(c)
        check(env.get("RUNFLEET_VENV__CACHE_DIR", {}).get("value") == CACHE_DIR, f"{where}: venv cache dir not {CACHE_DIR}")
        mounts = {m["name"]: m["mountPath"] for m in c.get("volumeMounts", [])}
        check(mounts.get("venvs") == CACHE_DIR, f"{where}: the venvs volume is not mounted at {CACHE_DIR}")
        check(sts["spec"].get("podManagementPolicy") == "Parallel", f"{where}: podManagementPolicy is not Parallel")
        check(sts["spec"]["serviceName"] in {s["metadata"]["name"] for s in by_kind.get("Service", [])},
              f"{where}: its serviceName has no Service")
        drain = int(env["RUNFLEET_CONSUMER__DRAIN_SECONDS"]["value"])
        kill = int(env["RUNFLEET_CONSUMER__KILL_GRACE_SECONDS"]["value"])
        check(spec.get("terminationGracePeriodSeconds", 30) > drain + kill,
              f"{where}: terminationGracePeriodSeconds does not cover the drain ({drain} s) and kill grace ({kill} s)")
        templates = sts["spec"].get("volumeClaimTemplates", [])
        if shared:
            check(not templates, f"{where}: per-pod claims although the cache is ReadWriteMany")
            volume = next((v for v in spec["volumes"] if v["name"] == "venvs"), {})
            claim = volume.get("persistentVolumeClaim", {}).get("claimName")
            check(claim in pvcs and pvcs[claim]["spec"]["accessModes"] == ["ReadWriteMany"],
                  f"{where}: venvs is not the shared ReadWriteMany claim")
        else:
            vct = {t["metadata"]["name"]: t for t in templates}
            if check("venvs" in vct, f"{where}: no volumeClaimTemplates entry 'venvs'"):
                check(vct["venvs"]["spec"]["accessModes"] == ["ReadWriteOnce"], f"{where}: venvs claim is not ReadWriteOnce")
            check(all(v["name"] != "venvs" for v in spec["volumes"]), f"{where}: venvs is also a pod volume")

    # Autoscaling: an HPA (or a KEDA ScaledObject) per consumer StatefulSet, targeting it.
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    scaled = by_kind.get("ScaledObject", [])
    scalers = hpas + scaled
    if name == "minimal-values.yaml":
        check(not scalers, "autoscaling is off but something scales the consumers")
    else:
        targets = sorted(s["spec"]["scaleTargetRef"]["name"] for s in scalers)
        check(targets == sorted(consumers), f"scalers target {targets}, consumer StatefulSets are {sorted(consumers)}")
        for s in scalers:
            ref = s["spec"]["scaleTargetRef"]
            check(ref.get("kind") == "StatefulSet" and ref.get("apiVersion") == "apps/v1",
                  f"{s['kind']} {s['metadata']['name']}: scaleTargetRef is not an apps/v1 StatefulSet")
        for h in hpas:
            down = h["spec"]["behavior"]["scaleDown"]
            check(down["stabilizationWindowSeconds"] >= 60 and all(p["type"] == "Pods" for p in down["policies"]),
                  f"HPA {h['metadata']['name']}: scale-down may remove many pods at once")
            check("replicas" not in consumers[h["spec"]["scaleTargetRef"]["name"]]["spec"],
                  f"HPA {h['metadata']['name']}: its StatefulSet also fixes replicas (upgrades would fight the HPA)")
        if name == "keda-values.yaml":
            check(scaled and not hpas, "KEDA is on but an HPA was rendered too")
            for s in scaled:
                for t in s["spec"]["triggers"]:
                    check(t["type"] == "rabbitmq" and t["metadata"].get("hostFromEnv") == "RUNFLEET_AMQP__URL",
                          f"ScaledObject {s['metadata']['name']}: trigger does not read the broker URL from the container env")
        if name == "two-groups-hpa-values.yaml":
            check(len(consumers) == 2, f"two groups gave {len(consumers)} StatefulSets")
            for h in hpas:
                sts = consumers[h["spec"]["scaleTargetRef"]["name"]]
                queues = env_of(pod_spec(sts)["containers"][0])["RUNFLEET_CONSUMER__QUEUES"]["value"].split(",")
                external = [m["external"]["metric"]["selector"]["matchLabels"]["queue"]
                            for m in h["spec"]["metrics"] if m["type"] == "External"
                            and m["external"]["metric"]["name"] == "runfleet_queue_messages_ready"]
                check(sorted(external) == sorted(queues),
                      f"HPA {h['metadata']['name']}: queue-depth metrics for {external}, group listens to {queues}")

    # The migration hook.
    jobs = by_kind.get("Job", [])
    if check(len(jobs) == 1, f"expected one migration Job, got {len(jobs)}"):
        job = jobs[0]
        hooks = set(job["metadata"].get("annotations", {}).get("helm.sh/hook", "").split(","))
        check({"pre-install", "pre-upgrade"} <= hooks, f"migration Job hooks are {hooks}")
        c = pod_spec(job)["containers"][0]
        check(c.get("args") == ["runfleet-producer", "migrate"], f"migration Job runs {c.get('args')}")

    # Monitoring objects.
    if name == "monitoring-values.yaml":
        rules = by_kind.get("PrometheusRule", [])
        if check(len(rules) == 1, "no PrometheusRule") and args.rules_out:
            with open(args.rules_out, "w") as f:
                yaml.safe_dump({"groups": rules[0]["spec"]["groups"]}, f, sort_keys=False)
        check(len(by_kind.get("PodMonitor", [])) == 1, "no PodMonitor")
        dashboards = [c for c in by_kind.get("ConfigMap", []) if c["metadata"]["labels"].get("grafana_dashboard") == "1"]
        check(len(dashboards) == 4, f"{len(dashboards)} dashboard ConfigMaps, expected 4")
        check(len(by_kind.get("NetworkPolicy", [])) == 2, "no NetworkPolicies")
        check(len(by_kind.get("Ingress", [])) == 1, "no Ingress")

    for f in failures:
        print(f"FAIL [{name}] {f}")
    print(f"{args.rendered} ({name}): {len(docs)} documents, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
