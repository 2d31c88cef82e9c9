#!/usr/bin/env bash
# Builds kube-apiserver, kubectl and etcd from the Go module proxy into
# bin/k8s/<version>/, the folder envtest reads through KUBEBUILDER_ASSETS.
# The scratch modules under hack/controlplane/ pin every dependency; a second
# run with the binaries in place returns at once.
set -euo pipefail

K8S_VERSION=${K8S_VERSION:-v1.37.2}
ETCD_VERSION=${ETCD_VERSION:-v3.7.3}
STAGING_VERSION=v0.${K8S_VERSION#v1.}

root=$(cd "$(dirname "$0")/../.." && pwd)
here=$root/hack/controlplane
out=$root/bin/k8s/$K8S_VERSION
if [[ -x $out/kube-apiserver && -x $out/kubectl && -x $out/etcd ]]; then
	exit 0
fi
mkdir -p "$out"

major=${K8S_VERSION#v}; major=${major%%.*}
minor=${K8S_VERSION#v*.}; minor=${minor%%.*}
ldflags="-s -w"
for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
	ldflags+=" -X $pkg.gitVersion=$K8S_VERSION -X $pkg.gitMajor=$major -X $pkg.gitMinor=$minor"
	ldflags+=" -X $pkg.gitTreeState=clean -X $pkg.buildDate=1970-01-01T00:00:00Z"
done

# kubernetes: k8s.io/kubernetes replaces its staging modules with ./staging,
# which a dependent module cannot use; point each one at its published
# version instead.
kmod=$here/kubernetes
if [[ ! -f $kmod/go.mod ]]; then
	mkdir -p "$kmod"
	(
		cd "$kmod"
		go mod init ironlb.io/controlplane/kubernetes >/dev/null 2>&1
		upstream=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p')
		for m in $(awk '$2 == "v0.0.0" && $1 ~ /^k8s.io\// {print $1}' "$upstream"); do
			go mod edit -replace "$m=$m@$STAGING_VERSION"
		done
		cat > tools.go <<GO
//go:build tools

// Package tools pins the control-plane commands this module builds.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
		go get "k8s.io/kubernetes/cmd/kube-apiserver@$K8S_VERSION" "k8s.io/kubernetes/cmd/kubectl@$K8S_VERSION"
		go mod tidy
	)
fi
(
	cd "$kmod"
	for cmd in kube-apiserver kubectl; do
		[[ -x $out/$cmd ]] || go build -trimpath -ldflags="$ldflags" -o "$out/$cmd" "k8s.io/kubernetes/cmd/$cmd"
	done
)

emod=$here/etcd
if [[ ! -f $emod/go.mod ]]; then
	mkdir -p "$emod"
	(
		cd "$emod"
		go mod init ironlb.io/controlplane/etcd >/dev/null 2>&1
		cat > tools.go <<GO
//go:build tools

// Package tools pins the etcd server this module builds.
package tools

import _ "go.etcd.io/etcd/server/v3"
GO
		go get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
		go mod tidy
	)
fi
(
	cd "$emod"
	[[ -x $out/etcd ]] || go build -trimpath -ldflags="-s -w" -o "$out/etcd" go.etcd.io/etcd/server/v3
)
