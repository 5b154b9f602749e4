{{- define "kamera.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kamera.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "kamera.operatorName" -}}
{{- printf "%s-operator" (include "kamera.fullname" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kamera.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "kamera.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kamera.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kamera.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "kamera.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kamera.operatorName" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kamera.operatorImage" -}}
{{- printf "%s:%s" .Values.operator.image.repository (default .Chart.AppVersion .Values.operator.image.tag) -}}
{{- end -}}

{{- define "kamera.workerImage" -}}
{{- printf "%s:%s" .Values.worker.image.repository (default .Chart.AppVersion .Values.worker.image.tag) -}}
{{- end -}}

{{- /*
Worker pod defaults for the operator, one line of JSON: {"resources": ResourceRequirements,
"imagePullSecrets": [LocalObjectReference], "priorityClassName": string}, empty keys left out.
*/ -}}
{{- define "kamera.workerDefaults" -}}
{{- $worker := .Values.worker -}}
{{- $defaults := dict -}}
{{- $resources := dict -}}
{{- range $key, $list := $worker.resources -}}
{{- if $list }}{{ $_ := set $resources $key $list }}{{ end -}}
{{- end -}}
{{- with $resources }}{{ $_ := set $defaults "resources" . }}{{ end -}}
{{- with $worker.imagePullSecrets }}{{ $_ := set $defaults "imagePullSecrets" . }}{{ end -}}
{{- with $worker.priorityClassName }}{{ $_ := set $defaults "priorityClassName" . }}{{ end -}}
{{- toJson $defaults -}}
{{- end -}}
