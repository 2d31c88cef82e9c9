#!/usr/bin/env bash
# Generates everything derived from the code: deepcopy functions, CRD YAML,
# RBAC from the +kubebuilder:rbac markers, and the rendered install.yaml.
#
#   hack/generate.sh          write into the source tree
#   hack/generate.sh DIR      write the manifests into DIR instead (the drift
#                             test compares DIR with the committed files)
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
: "${CONTROLLER_GEN:=$root/bin/controller-gen}"
: "${KUBECTL:=$root/bin/k8s/v1.37.2/kubectl}"

out=${1:-}
if [[ -z $out ]]; then
	out=$root/manifests
	"$CONTROLLER_GEN" object:headerFile=hack/boilerplate.go.txt paths=./api/...
else
	mkdir -p "$out"
	# The kustomize base refers to hand-written files too; give the copy
	# all of them so that it renders the same install.yaml.
	cp -R manifests/. "$out"/
	rm -rf "$out/crd/bases" "$out/rbac/controller" "$out/rbac/speaker" "$out/install.yaml"
	"$CONTROLLER_GEN" object:headerFile=hack/boilerplate.go.txt paths=./api/... output:object:dir="$out"
fi

"$CONTROLLER_GEN" crd paths=./api/... output:crd:dir="$out/crd/bases"
"$CONTROLLER_GEN" rbac:roleName=ironlb-controller paths=./controller/... output:rbac:dir="$out/rbac/controller"
"$CONTROLLER_GEN" rbac:roleName=ironlb-speaker paths=./speaker/... output:rbac:dir="$out/rbac/speaker"

{
	echo "# ironlb install manifest, rendered from manifests/ by 'make generate'."
	echo "# Apply with: kubectl apply --server-side -f install.yaml"
	"$KUBECTL" kustomize "$out"
} >"$out/install.yaml.tmp"
mv "$out/install.yaml.tmp" "$out/install.yaml"
