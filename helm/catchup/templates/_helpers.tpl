{{/* Names */}}
{{- define "catchup.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "catchup.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "catchup.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "catchup.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "catchup.selectorLabels" -}}
app.kubernetes.io/name: {{ include "catchup.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "catchup.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "catchup.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "catchup.tokenSecretName" -}}
{{- default (printf "%s-token" (include "catchup.fullname" .)) .Values.apiToken.existingSecret -}}
{{- end -}}

{{- define "catchup.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The policy file name inside /etc/catchup/policies. */}}
{{- define "catchup.policyFile" -}}
{{- if .Values.policy.inline -}}
inline.toml
{{- else -}}
{{- $file := printf "files/policies/%s.toml" .Values.policy.builtin -}}
{{- if not (.Files.Get $file) -}}
{{- fail (printf "policy.builtin: no policy %q in the chart (shipped: default, ingestion-pipeline); use policy.inline for your own" .Values.policy.builtin) -}}
{{- end -}}
{{- printf "%s.toml" .Values.policy.builtin -}}
{{- end -}}
{{- end -}}

{{/* catchup.toml: the user's config with the paths and listen address the chart owns. */}}
{{- define "catchup.configToml" -}}
{{- $c := deepCopy .Values.config -}}
{{- $_ := set $c "policy" (printf "/etc/catchup/policies/%s" (include "catchup.policyFile" .)) -}}
{{- $_ := set $c "state_dir" "/var/lib/catchup" -}}
{{- $api := deepCopy (default dict $c.api) -}}
{{- $_ := set $api "listen" (printf "0.0.0.0:%d" (int .Values.service.port)) -}}
{{- $_ := set $api "token_file" (printf "/etc/catchup/token/%s" .Values.apiToken.key) -}}
{{- if .Values.apiToken.consumerKey -}}
{{- $_ := set $api "consumer_token_file" (printf "/etc/catchup/token/%s" .Values.apiToken.consumerKey) -}}
{{- end -}}
{{- $_ := set $c "api" $api -}}
{{- $gate := deepCopy (default dict $c.gate) -}}
{{- if eq .Values.mode "sidecar" -}}
{{- /* In HA the elected leader owns retention, a sidecar only when no standalone instance runs. */ -}}
{{- if not .Values.ha.enabled -}}
{{- $_ := set $c "retention_actions" .Values.sidecar.ownsRetention -}}
{{- end -}}
{{- $_ := set $gate "instances" .Values.sidecar.instances -}}
{{- end -}}
{{- /* YAML numbers arrive as floats; catchup wants a whole number. */ -}}
{{- if hasKey $gate "instances" -}}
{{- $_ := set $gate "instances" (int $gate.instances) -}}
{{- end -}}
{{- $_ := set $c "gate" $gate -}}
{{- if .Values.ha.enabled -}}
{{- if and (eq .Values.mode "sidecar") (not .Values.ha.name) -}}
{{- fail "ha.name is required for sidecars with ha.enabled: the standalone release's ha.name (or its full name), so that the sidecars join its election as standby members. A name of their own would make a second leader that changes retention beside the standalone release's" -}}
{{- end -}}
{{- $_ := set $c "ha" (dict "name" (default (include "catchup.fullname" .) .Values.ha.name) "session_timeout" .Values.ha.sessionTimeout "standby" (eq .Values.mode "sidecar")) -}}
{{- end -}}
{{- toToml $c -}}
{{- end -}}

{{/* The catchup container, shared by the standalone Deployment and the sidecar template. */}}
{{- define "catchup.sidecar.container" -}}
- name: catchup
  image: {{ include "catchup.image" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  args: ["run", "--config", "/etc/catchup/catchup.toml"]
  env:
    {{- with .Values.aws.region }}
    - name: AWS_REGION
      value: {{ . | quote }}
    {{- end }}
    - name: CATCHUP_LOG
      value: info
    - name: CATCHUP_LOG_FORMAT
      value: {{ .Values.logFormat | default "json" | quote }}
    {{- if .Values.ha.enabled }}
    # The pod's name is its id in the HA deployment (status, heartbeats, claims).
    - name: CATCHUP_HA_INSTANCE
      valueFrom:
        fieldRef:
          fieldPath: metadata.name
    {{- end }}
  ports:
    - name: http
      containerPort: {{ .Values.service.port }}
      protocol: TCP
  livenessProbe:
    httpGet:
      path: /healthz
      port: http
    periodSeconds: 10
    failureThreshold: 6
  {{- if eq .Values.mode "standalone" }}
  readinessProbe:
    httpGet:
      path: /readyz
      port: http
    periodSeconds: 10
    failureThreshold: 3
  {{- end }}
  {{- /* No readiness probe in a sidecar: it would hold the host pod un-Ready (and its rollout)
  while catchup waits for data; consumers reach the gate on localhost and fall back anyway. */}}
  startupProbe:
    httpGet:
      path: /healthz
      port: http
    periodSeconds: 2
    failureThreshold: 60
  resources:
    {{- toYaml .Values.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.securityContext | nindent 4 }}
  volumeMounts:
    - name: catchup-config
      mountPath: /etc/catchup/catchup.toml
      subPath: catchup.toml
      readOnly: true
    - name: catchup-config
      mountPath: /etc/catchup/policies
      readOnly: true
    - name: catchup-token
      mountPath: /etc/catchup/token
      readOnly: true
    - name: catchup-state
      mountPath: /var/lib/catchup
    - name: catchup-tmp
      mountPath: /tmp
{{- end -}}

{{/* The volumes the catchup container mounts. */}}
{{- define "catchup.sidecar.volumes" -}}
- name: catchup-config
  configMap:
    name: {{ include "catchup.fullname" . }}
    items:
      - key: catchup.toml
        path: catchup.toml
      {{- range $path, $_ := .Files.Glob "files/policies/*.toml" }}
      - key: {{ base $path }}
        path: {{ base $path }}
      {{- end }}
      {{- if .Values.policy.inline }}
      - key: inline.toml
        path: inline.toml
      {{- end }}
- name: catchup-token
  secret:
    secretName: {{ include "catchup.tokenSecretName" . }}
    items:
      - key: {{ .Values.apiToken.key }}
        path: {{ .Values.apiToken.key }}
      {{- if .Values.apiToken.consumerKey }}
      - key: {{ .Values.apiToken.consumerKey }}
        path: {{ .Values.apiToken.consumerKey }}
      {{- end }}
- name: catchup-state
  {{- if and (eq .Values.mode "standalone") .Values.state.persistence.enabled (not .Values.ha.enabled) }}
  persistentVolumeClaim:
    claimName: {{ default (printf "%s-state" (include "catchup.fullname" .)) .Values.state.persistence.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
- name: catchup-tmp
  emptyDir:
    sizeLimit: 64Mi
{{- end -}}
