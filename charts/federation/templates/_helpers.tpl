{{/* Names, labels and the pieces every Federation container shares. */}}

{{- define "federation.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "federation.fullname" -}}
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

{{- define "federation.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: {{ include "federation.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: federation
{{- end }}

{{/* Selector labels of one component: (dict "root" $ "component" "apiserver"). */}}
{{- define "federation.selectorLabels" -}}
app.kubernetes.io/name: {{ include "federation.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "federation.componentLabels" -}}
{{ include "federation.labels" .root }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "federation.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "federation.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "federation.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret with `encryption-key` and `bootstrap-token`. */}}
{{- define "federation.secretName" -}}
{{- default (printf "%s-keys" (include "federation.fullname" .)) .Values.secrets.existingSecret }}
{{- end }}

{{- define "federation.tlsSecretName" -}}
{{- default (printf "%s-tls" (include "federation.fullname" .)) .Values.tls.existingSecret }}
{{- end }}

{{- define "federation.apiserverServiceName" -}}
{{- printf "%s-apiserver" (include "federation.fullname" .) }}
{{- end }}

{{- define "federation.postgresqlName" -}}
{{- printf "%s-postgresql" (include "federation.fullname" .) }}
{{- end }}

{{/* The database URL's Secret and key: the operator's, the in-chart Postgres's, or one made from database.url. */}}
{{- define "federation.databaseSecretName" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecret }}
{{- else if .Values.postgresql.enabled }}
{{- include "federation.postgresqlName" . }}
{{- else }}
{{- printf "%s-database" (include "federation.fullname" .) }}
{{- end }}
{{- end }}

{{- define "federation.databaseSecretKey" -}}
{{- if .Values.database.existingSecret }}
{{- .Values.database.existingSecretKey }}
{{- else }}
{{- print "url" }}
{{- end }}
{{- end }}

{{/* Refuse contradictory or missing database values, once, with a message naming the values. */}}
{{- define "federation.checkValues" -}}
{{- $external := or .Values.database.url .Values.database.existingSecret }}
{{- if and .Values.postgresql.enabled $external }}
{{- fail "choose one database: postgresql.enabled=true (in-chart, trials) or database.url / database.existingSecret (external)" }}
{{- end }}
{{- if not (or .Values.postgresql.enabled $external) }}
{{- fail "no database: set database.url or database.existingSecret (an external Postgres 15+), or postgresql.enabled=true for a trial" }}
{{- end }}
{{- if and .Values.database.url .Values.database.existingSecret }}
{{- fail "set database.url or database.existingSecret, not both" }}
{{- end }}
{{- if and .Values.tls.existingSecret .Values.tls.certManager.enabled }}
{{- fail "set tls.existingSecret or tls.certManager.enabled, not both" }}
{{- end }}
{{- if and .Values.tls.certManager.enabled (not .Values.tls.certManager.issuerRef.name) }}
{{- fail "tls.certManager.enabled needs tls.certManager.issuerRef.name" }}
{{- end }}
{{- end }}

{{/* Environment every Federation process shares: the database and the encryption key (a file). */}}
{{- define "federation.commonEnv" -}}
- name: FEDERATION_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "federation.databaseSecretName" . }}
      key: {{ include "federation.databaseSecretKey" . }}
- name: FEDERATION_DATA_DIR
  value: /tmp/federation
- name: HOME
  value: /tmp
{{- end }}

{{- define "federation.keyEnv" -}}
- name: FEDERATION_ENCRYPTION_KEY_FILE
  value: /etc/federation/keys/encryption.key
{{- end }}

{{- define "federation.keyVolume" -}}
- name: keys
  secret:
    secretName: {{ include "federation.secretName" . }}
    defaultMode: 0440
    items:
      - key: encryption-key
        path: encryption.key
{{- end }}

{{- define "federation.podSecurity" -}}
serviceAccountName: {{ include "federation.serviceAccountName" . }}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Spread a component's replicas over nodes when it can: (dict "root" $ "component" "controller"). */}}
{{- define "federation.softAntiAffinity" -}}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "federation.selectorLabels" . | nindent 12 }}
{{- end }}

{{/* The load-balancer provider's settings (TrafficSettings), for the controllers. */}}
{{- define "federation.trafficEnv" -}}
{{- $t := .Values.traffic }}
- name: FEDERATION_TRAFFIC_PROVIDER
  value: {{ $t.provider | quote }}
{{- if $t.listenOnPodIP }}
- name: FEDERATION_TRAFFIC_ADDRESS
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: FEDERATION_TRAFFIC_ALLOW_EXTERNAL
  value: "true"
{{- end }}
- name: FEDERATION_TRAFFIC_PORTS
  value: {{ $t.ports | quote }}
- name: FEDERATION_TRAFFIC_RETRIES
  value: {{ $t.retries | quote }}
- name: FEDERATION_TRAFFIC_DIAL_TIMEOUT
  value: {{ $t.dialTimeout | quote }}
- name: FEDERATION_TRAFFIC_RESPONSE_HEADER_TIMEOUT
  value: {{ $t.responseHeaderTimeout | quote }}
- name: FEDERATION_TRAFFIC_FAIL_DURATION
  value: {{ $t.failDuration | quote }}
- name: FEDERATION_TRAFFIC_MAX_FAILS
  value: {{ $t.maxFails | quote }}
- name: FEDERATION_TRAFFIC_UNHEALTHY_STATUS
  value: {{ $t.unhealthyStatus | quote }}
{{- end }}
