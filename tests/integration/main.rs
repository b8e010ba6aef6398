//! Integration tests against the real local control plane, OpenBao and the AWS PCA emulator
//! started by `make test` (tests/testenv/testenv.sh). One binary, one module per area.

mod support;

mod aws_pca;
mod ca_rotation;
mod certificates;
mod chart;
mod cli;
mod convert;
mod crds;
mod events;
mod hardening;
mod hostile;
mod identity_policy;
mod keys;
mod leader;
mod openbao;
mod outputs;
mod pod_certificates;
mod policy;
mod rbac;
mod revocation;
mod smoke_kube;
mod smoke_moto;
mod smoke_openbao;
mod trust_bundles;
mod vault;
