{{/*
Names and labels shared by the templates.
*/}}

{{/* The chart name (nameOverride), used in app.kubernetes.io/name. */}}
{{- define "procshot.name" -}}
{{- .Values.nameOverride | default .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The prefix of every resource name: fullnameOverride, else the release name when it contains
the chart name, else "<release>-<chart>". Kept to 54 characters so that the longest suffix
("-operator") still fits in 63.
*/}}
{{- define "procshot.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "procshot.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 54 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 54 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* The operator's Deployment, ServiceAccount and RBAC objects. */}}
{{- define "procshot.operatorName" -}}
{{- printf "%s-operator" (include "procshot.fullname" .) -}}
{{- end -}}

{{/* The namespace of the capture pods: captureNamespace.name, default the release's. */}}
{{- define "procshot.captureNamespace" -}}
{{- .Values.captureNamespace.name | default .Release.Namespace -}}
{{- end -}}

{{/* The leader-election Lease's name. */}}
{{- define "procshot.leaseName" -}}
{{- .Values.leaderElection.leaseName | default (include "procshot.operatorName" .) -}}
{{- end -}}

{{/* Images: repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "procshot.operatorImage" -}}
{{- printf "%s:%s" .Values.images.operator.repository (.Values.images.operator.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- define "procshot.agentImage" -}}
{{- printf "%s:%s" .Values.images.agent.repository (.Values.images.agent.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* Labels of every object. */}}
{{- define "procshot.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "procshot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: procshot
{{- end -}}

{{/*
Selects the operator's pods. The component label keeps capture pods (which carry
app.kubernetes.io/name: procshot and component: capture) out of the Deployment and Service.
*/}}
{{- define "procshot.operatorSelectorLabels" -}}
app.kubernetes.io/name: {{ include "procshot.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{/* Labels of the operator's own objects (Deployment, pods, ServiceAccount, Service). */}}
{{- define "procshot.operatorLabels" -}}
{{ include "procshot.labels" . }}
app.kubernetes.io/component: operator
{{- end -}}
