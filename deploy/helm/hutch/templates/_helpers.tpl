{{/* The chart's name, and the release's full name (names of its objects start with it). */}}
{{- define "hutch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "hutch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Labels of every object; the selector labels of one component (`dict "root" $ "component" "api"`). */}}
{{- define "hutch.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "hutch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "hutch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hutch.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "hutch.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end }}

{{/* The domain, required. */}}
{{- define "hutch.domain" -}}
{{- required "set domain: the E2B_DOMAIN clients use (api.<domain> and *.<domain> must reach this release)" .Values.domain }}
{{- end }}

{{/* The Secrets and their keys: the cluster secret, the operator key, the catalog's URL. */}}
{{- define "hutch.clusterSecretName" -}}
{{- .Values.clusterSecret.existingSecret | default (printf "%s-cluster" (include "hutch.fullname" .)) }}
{{- end }}

{{- define "hutch.operatorKeyName" -}}
{{- .Values.operatorKey.existingSecret | default (printf "%s-operator" (include "hutch.fullname" .)) }}
{{- end }}

{{- define "hutch.catalogSecretName" -}}
{{- .Values.postgresql.existingSecret | default (printf "%s-catalog" (include "hutch.fullname" .)) }}
{{- end }}

{{- define "hutch.catalogSecretKey" -}}
{{- if .Values.postgresql.existingSecret }}{{ .Values.postgresql.existingSecretKey }}{{ else }}url{{ end }}
{{- end }}

{{/* Fails on a catalog given twice or not at all. */}}
{{- define "hutch.checkCatalog" -}}
{{- $p := .Values.postgresql }}
{{- if and $p.url $p.existingSecret }}
{{- fail "set postgresql.url or postgresql.existingSecret, not both" }}
{{- end }}
{{- if and $p.enabled (or $p.url $p.existingSecret) }}
{{- fail "an external PostgreSQL (postgresql.url or postgresql.existingSecret) needs postgresql.enabled=false" }}
{{- end }}
{{- if not (or $p.enabled $p.url $p.existingSecret) }}
{{- fail "no catalog: set postgresql.url or postgresql.existingSecret, or postgresql.enabled=true to try Hutch" }}
{{- end }}
{{- end }}

{{/*
The environment every process shares: the catalog, the cluster secret, the domain, and the operator's
extra settings. The secrets' files are mounted by the volumes of "hutch.secretVolumes".
*/}}
{{- define "hutch.commonEnv" -}}
- name: HUTCH_CATALOG__URL
  valueFrom:
    secretKeyRef:
      name: {{ include "hutch.catalogSecretName" . }}
      key: {{ include "hutch.catalogSecretKey" . }}
- name: HUTCH_CLUSTER__SECRET_FILE
  value: /etc/hutch/cluster/secret
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "hutch.clusterSecretVolume" -}}
- name: cluster-secret
  secret:
    secretName: {{ include "hutch.clusterSecretName" . }}
    defaultMode: 0440
    items:
      - key: secret
        path: secret
{{- end }}

{{- define "hutch.clusterSecretMount" -}}
- name: cluster-secret
  mountPath: /etc/hutch/cluster
  readOnly: true
{{- end }}

{{/* Writable directories of the API and proxy pods (their root file system is read-only). */}}
{{- define "hutch.scratchVolumes" -}}
- name: data
  emptyDir: {}
- name: cache
  emptyDir: {}
- name: tmp
  emptyDir: {}
{{- end }}

{{- define "hutch.scratchMounts" -}}
- name: data
  mountPath: /var/lib/hutch
- name: cache
  mountPath: /var/cache/hutch
- name: tmp
  mountPath: /tmp
{{- end }}

{{/* A Secret's value kept across upgrades: the given one, else the one already in the cluster, else a new one. */}}
{{- define "hutch.keptSecret" -}}
{{- $existing := lookup "v1" "Secret" .namespace .name }}
{{- .given | default (dig "data" .key "" $existing | b64dec) | default (randAlphaNum 48) }}
{{- end }}
