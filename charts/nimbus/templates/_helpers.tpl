{{/* Names, labels and shared pieces of the nimbus chart. */}}

{{- define "nimbus.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* <release>-nimbus, or the release name when it already says nimbus. */}}
{{- define "nimbus.fullname" -}}
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

{{- define "nimbus.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "nimbus.selectorLabels" -}}
app.kubernetes.io/name: {{ include "nimbus.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end }}

{{- define "nimbus.labels" -}}
helm.sh/chart: {{ include "nimbus.chart" . }}
{{ include "nimbus.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: nimbus
{{- end }}

{{- define "nimbus.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "nimbus.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "nimbus.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/* The Secret with JWT_SECRET and DB_PASSWORD that the chart owns. */}}
{{- define "nimbus.secretName" -}}
{{- include "nimbus.fullname" . }}
{{- end }}

{{- define "nimbus.jwtSecretName" -}}
{{- default (include "nimbus.secretName" .) .Values.auth.existingSecret }}
{{- end }}

{{- define "nimbus.jwtSecretKey" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretJwtKey }}{{ else }}jwt-secret{{ end }}
{{- end }}

{{- define "nimbus.adminPasswordKey" -}}
{{- if .Values.auth.existingSecret }}{{ .Values.auth.existingSecretAdminPasswordKey }}{{ else }}admin-password{{ end }}
{{- end }}

{{- define "nimbus.dbSecretName" -}}
{{- default (include "nimbus.secretName" .) .Values.database.existingSecret }}
{{- end }}

{{- define "nimbus.dbSecretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}db-password{{ end }}
{{- end }}

{{/* True (non-empty) when the cluster serves prometheus-operator's API. */}}
{{- define "nimbus.hasMonitoringAPI" -}}
{{- if .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" }}true{{ end }}
{{- end }}
