{{/* Chart name, truncated for label values. */}}
{{- define "runfleet.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name; component names are appended to it. */}}
{{- define "runfleet.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "runfleet.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "runfleet.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Selector labels of one component: pass (dict "root" $ "component" "producer"). */}}
{{- define "runfleet.selectorLabels" -}}
app.kubernetes.io/name: {{ include "runfleet.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/* Pod labels: selector labels plus the scrape job name the alert rules expect. */}}
{{- define "runfleet.podLabels" -}}
{{ include "runfleet.selectorLabels" . }}
runfleet.io/job: runfleet-{{ .job | default .component }}
{{- end }}

{{- define "runfleet.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{- define "runfleet.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "runfleet.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Scrape annotations for a pod listening on `port`. */}}
{{- define "runfleet.scrapeAnnotations" -}}
{{- if .root.Values.monitoring.scrapeAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .port | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- end }}

{{/* Environment every component shares; URLs only from Secrets. */}}
{{- define "runfleet.commonEnv" -}}
- name: RUNFLEET_DATABASE__URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.database.existingSecret }}
      key: {{ .Values.database.urlKey }}
- name: RUNFLEET_AMQP__URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.amqp.existingSecret }}
      key: {{ .Values.amqp.urlKey }}
- name: RUNFLEET_DATABASE__POOL_SIZE
  value: {{ .Values.database.poolSize | quote }}
- name: RUNFLEET_AMQP__PREFIX
  value: {{ .Values.amqp.prefix | quote }}
- name: RUNFLEET_AMQP__DELIVERY_LIMIT
  value: {{ .Values.amqp.deliveryLimit | quote }}
- name: RUNFLEET_LOG__FORMAT
  value: {{ .Values.log.format | quote }}
- name: RUNFLEET_LOG__LEVEL
  value: {{ .Values.log.level | quote }}
{{- with .Values.secretKeys.existingSecret }}
- name: RUNFLEET_SECRETS__KEYS
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.secretKeys.key }}
      optional: true
{{- end }}
{{- with .Values.tracing.otlpEndpoint }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ . | quote }}
{{- end }}
{{- range $name, $value := .Values.tracing.env }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{/* Probes on the component's HTTP port. */}}
{{- define "runfleet.probes" -}}
readinessProbe:
  httpGet: {path: /ready, port: http}
  periodSeconds: 5
  failureThreshold: 3
livenessProbe:
  httpGet: {path: /health, port: http}
  initialDelaySeconds: 5
  periodSeconds: 10
  failureThreshold: 6
{{- end }}

{{/* The consumer's pip index settings; an index URL with credentials only from a Secret. */}}
{{- define "runfleet.pipEnv" -}}
{{- if .Values.pip.existingSecret }}
- name: RUNFLEET_PIP__INDEX_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.pip.existingSecret }}
      key: {{ .Values.pip.indexUrlKey }}
{{- else if .Values.pip.indexUrl }}
- name: RUNFLEET_PIP__INDEX_URL
  value: {{ .Values.pip.indexUrl | quote }}
{{- end }}
{{- with .Values.pip.extraIndexUrl }}
- name: RUNFLEET_PIP__EXTRA_INDEX_URL
  value: {{ . | quote }}
{{- end }}
{{- with .Values.pip.trustedHost }}
- name: RUNFLEET_PIP__TRUSTED_HOST
  value: {{ . | quote }}
{{- end }}
- name: RUNFLEET_PIP__TIMEOUT
  value: {{ .Values.pip.timeoutSeconds | quote }}
{{- with .Values.pip.extraArgs }}
- name: RUNFLEET_PIP__EXTRA_ARGS
  value: {{ . | quote }}
{{- end }}
{{- end }}

{{/* HPA behavior: scale up fast; scale down one pod at a time after a stable window, so a
burst never stops many busy consumers at once (each drains its scripts first). */}}
{{- define "runfleet.scaleBehavior" -}}
scaleUp:
  stabilizationWindowSeconds: 0
  selectPolicy: Max
  policies:
    - type: Pods
      value: 4
      periodSeconds: 30
    - type: Percent
      value: 100
      periodSeconds: 30
scaleDown:
  stabilizationWindowSeconds: {{ .scaleDown.stabilizationWindowSeconds }}
  selectPolicy: Min
  policies:
    - type: Pods
      value: {{ .scaleDown.podsPerPeriod }}
      periodSeconds: {{ .scaleDown.periodSeconds }}
{{- end }}
