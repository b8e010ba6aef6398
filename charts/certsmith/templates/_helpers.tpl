{{- define "certsmith.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "certsmith.fullname" -}}
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

{{- define "certsmith.labels" -}}
app.kubernetes.io/name: {{ include "certsmith.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "certsmith.selectorLabels" -}}
app.kubernetes.io/name: {{ include "certsmith.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "certsmith.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "certsmith.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "certsmith.clusterResourceNamespace" -}}
{{- default .Release.Namespace .Values.clusterResourceNamespace }}
{{- end }}

{{- define "certsmith.leaseNamespace" -}}
{{- default .Release.Namespace .Values.leaderElection.namespace }}
{{- end }}

{{- define "certsmith.leaderElect" -}}
{{- if or .Values.leaderElection.enabled (gt (int .Values.replicaCount) 1) }}true{{ end }}
{{- end }}

{{- define "certsmith.args" -}}
- controller
- --cluster-resource-namespace={{ include "certsmith.clusterResourceNamespace" . }}
- --metrics-addr=0.0.0.0:{{ .Values.metricsPort }}
- --concurrency={{ .Values.concurrency }}
- --aws-pca-issue-rate={{ .Values.awsPcaIssueRate }}
- --log-format={{ .Values.logFormat }}
{{- if .Values.crl.enabled }}
- --crl-addr=0.0.0.0:{{ .Values.crl.port }}
{{- end }}
{{- with .Values.watchNamespaces }}
- --namespace={{ join "," . }}
{{- end }}
{{- with .Values.vault.issuerServers }}
- --issuer-vault-servers={{ join "," . }}
{{- end }}
{{- if not .Values.trustBundles.enabled }}
- --trust-bundles=false
{{- end }}
{{- if not .Values.podCertificates.enabled }}
- --pod-certificates=false
{{- end }}
{{- if include "certsmith.leaderElect" . }}
- --leader-elect
- --leader-election-namespace={{ include "certsmith.leaseNamespace" . }}
- --leader-election-lease-name={{ include "certsmith.fullname" . }}
- --leader-election-lease-duration={{ .Values.leaderElection.leaseDuration }}
{{- with .Values.leaderElection.renewDeadline }}
- --leader-election-renew-deadline={{ . }}
{{- end }}
{{- end }}
{{- range .Values.extraArgs }}
- {{ . | quote }}
{{- end }}
{{- end }}

{{- /* Rules for the namespaces whose Certificates and Issuers the operator serves: every
namespace (ClusterRole) or each of watchNamespaces (Roles). */}}
{{- define "certsmith.workloadRules" }}
# The Certificate controller lists and watches Certificates; its cache also finds two
# Certificates naming one Secret (controller/run.rs, certificate::gather::older_claimant). Before a
# Secret is adopted, the Certificate it names is looked up live in case the cache lags
# (certificate::gather::claims_secret: get). patch: the certsmith.dev/revoke-on-delete
# finalizer is added and removed with spec.revocationPolicy.revokeOnDelete, at the
# resourceVersion read (certificate::revoke::set_finalizer).
- apiGroups: [certsmith.dev]
  resources: [certificates]
  verbs: [get, list, watch, patch]
# Status is written with server-side apply after each issuance or failure
# (certificate::report::write_status).
- apiGroups: [certsmith.dev]
  resources: [certificates/status]
  verbs: [patch]
# Issuers are read at issuance (controller::issuer::spec_of) and watched by the Issuer
# controller, which writes their Ready condition and policy summary
# (controller::issuer::reconcile).
- apiGroups: [certsmith.dev]
  resources: [issuers]
  verbs: [get, list, watch]
- apiGroups: [certsmith.dev]
  resources: [issuers/status]
  verbs: [patch]
# get: the TLS Secret is read live before every decision (certificate::gather), and an
# Issuer's CA, Vault or AWS credential Secrets are read from its own namespace
# (issuer::capabilities::SecretReader), as are AWS Private CA pending-request Secrets
# (issuer::capabilities::PendingStore).
# list, watch: the metadata-only watch on Secrets labelled certsmith.dev/managed notices a
# deleted or edited TLS Secret, and the one on the Secrets issuers name follows a CA key pair
# or credential change (controller/run.rs); Kubernetes RBAC cannot narrow them to labels.
# create, patch: TLS Secrets are written with server-side apply (secret::apply_at), which
# creates them the first time; pending-request Secrets are created, then patched with the
# certificate ARN (issuer::capabilities::PendingStore).
# update: a Secret whose extra outputs, keystores or owner reference no longer match the
# spec is replaced (with its resourceVersion) around the same certificate, so keys and
# references the operator stopped writing go (certificate::store::rewrite, secret::replace_at).
# delete: the pending-request Secret <certificate>-certsmith-pending is removed once the
# signed certificate is stored, or when it no longer matches the Certificate
# (PendingStore::discard_leftover, secret::delete_exactly with a UID precondition). TLS
# Secrets are never deleted.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, update, patch, delete]
# Identity policy at issuance (controller::certificate::policy): a ClusterIssuer's
# policy.namespaces.selector needs the Certificate's namespace's labels (namespaces: get),
# and spiffe.requireServiceAccount needs to know that the SVID's ServiceAccount exists
# (serviceaccounts: get, metadata only).
- apiGroups: [""]
  resources: [namespaces, serviceaccounts]
  verbs: [get]
# Events on Certificates: created, and a repeat patched into the first one's series
# (controller::events::Recorder, from certificate::report::publish). Cluster-wide, this also covers the Events on
# TrustBundles, which go to the default namespace (trust_bundle::publish).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
# A CA issuer's CRL, the ConfigMap certsmith-crl-<kind>-<name> in the CA Secret's namespace
# (issuer::crl): get before each write and by the CRL server (crl_http), create the first
# time, update (a PUT at the version read, only one labelled certsmith.dev/crl and annotated
# with the issuer) for each revocation and refresh.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, create, update]
{{- if .Values.trustBundles.enabled }}
# TrustBundles' ConfigMaps (controller::trust_bundle). get: a bundle's ConfigMap is read
# before it is written (targets::sync_one), as are configMap sources (sources::read).
# list, watch: metadata-only watches of the ConfigMaps bundles wrote (label
# certsmith.dev/trust-bundle) and of source ConfigMaps (run.rs, trust_bundle_controller).
# create: the ConfigMap in a newly selected namespace (a POST: an existing one is never
# taken over). update: one whose content changed, a PUT at the version read, only when it
# carries the bundle's label. delete: one in a namespace no longer selected, preconditioned
# on UID and version. Never patch.
- apiGroups: [""]
  resources: [configmaps]
  verbs: [get, list, watch, create, update, delete]
{{- end }}
{{- if .Values.podCertificates.enabled }}
# PodCertificateRequests are watched by the pod certificate controller (run.rs,
# pod_certificate_controller; every signer's, since a field selector cannot match a signer
# prefix). get as well: the signer contract (KEP-4317, issue 15) grants signers
# get/list/watch; the controller itself only lists and watches.
- apiGroups: [certificates.k8s.io]
  resources: [podcertificaterequests]
  verbs: [get, list, watch]
# The answer (Issued with the chain, Denied or Failed) is one PUT of the status subresource
# at the version read (pod_certificate::write). The API server also requires sign on the
# signer: the -podcertificates ClusterRole.
- apiGroups: [certificates.k8s.io]
  resources: [podcertificaterequests/status]
  verbs: [update]
{{- end }}
{{- end }}
