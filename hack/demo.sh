#!/usr/bin/env bash
# Runs ironlb on its built-in lab. The lab — control plane, nodes, a client
# and routers in network namespaces — arrives with the speaker; until then
# this says so instead of pretending.
set -euo pipefail
cat <<'MSG'
ironlb demo: not available yet.

The demo needs the built-in lab (a control plane, nodes, a client and routers
in network namespaces) and the speaker, which are still being built. What
works today:

  make build             builds bin/controller and bin/speaker
  make test              runs the tests against a real kube-apiserver and etcd
  manifests/install.yaml installs the CRDs, RBAC, controller and speaker

MSG
