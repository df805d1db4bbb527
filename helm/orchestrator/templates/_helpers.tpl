{{/* The RayCluster's name: the release, so two releases never share a cluster. */}}
{{- define "orchestrator.cluster" -}}
{{- printf "%s-orchestrator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "orchestrator.labels" -}}
app.kubernetes.io/name: orchestrator
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "orchestrator.podSecurity" -}}
runAsNonRoot: true
runAsUser: 1000
runAsGroup: 1000
fsGroup: 1000
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "orchestrator.containerSecurity" -}}
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
runAsNonRoot: true
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* TPU slice arithmetic, as orchestrator/job/tpu.py: AxB chips; up to 8 chips is one host, else 4 a host. */}}
{{- define "orchestrator.tpuChips" -}}
{{- $dims := splitList "x" .Values.accelerator.tpu.topology -}}
{{- mul (atoi (index $dims 0)) (atoi (index $dims 1)) -}}
{{- end -}}
{{- define "orchestrator.tpuChipsPerHost" -}}
{{- $chips := include "orchestrator.tpuChips" . | atoi -}}
{{- if le $chips 8 }}{{ $chips }}{{ else }}4{{ end -}}
{{- end -}}
{{- define "orchestrator.tpuHosts" -}}
{{- div (include "orchestrator.tpuChips" . | atoi) (include "orchestrator.tpuChipsPerHost" . | atoi) -}}
{{- end -}}
{{- define "orchestrator.gkeTpuAccelerator" -}}
{{- if eq .Values.accelerator.tpu.version "v5e" }}tpu-v5-lite-podslice{{ else }}tpu-v6e-slice{{ end -}}
{{- end -}}

{{- define "orchestrator.volumeMounts" -}}
- name: results
  mountPath: /results
- name: ray-tmp
  mountPath: /tmp/ray
{{- end -}}

{{- define "orchestrator.volumes" -}}
- name: results
  persistentVolumeClaim:
    claimName: {{ include "orchestrator.cluster" . }}-results
- name: ray-tmp
  emptyDir: {}
{{- end -}}
