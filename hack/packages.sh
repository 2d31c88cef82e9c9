#!/usr/bin/env bash
# Installs, as root, the Debian packages the lab and the tests use, when
# they are missing. Used by .ci/run and by make demo.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

# Packages the tests use: the end-to-end lab needs iproute2 (namespaces,
# veth, bridges), nftables (the kube-proxy stand-in), frr and bird2 (real
# routers), curl and ping (the clients) and procps (sysctl).
packages=(make git iproute2 nftables frr bird2 curl iputils-ping procps)
missing=()
for p in "${packages[@]}"; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
	apt-get update -qq
	# FRR and BIRD must run only inside the lab's namespaces: keep their
	# packages from starting services in the root namespace while they
	# install.
	policy=/usr/sbin/policy-rc.d
	made_policy=0
	if [[ ! -e $policy ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod 755 "$policy"
		made_policy=1
		trap 'rm -f "$policy"' EXIT
	fi
	apt-get install -y -qq --no-install-recommends "${missing[@]}"
	if ((made_policy)); then
		rm -f "$policy"
		trap - EXIT
	fi
fi
# No routing daemon may run in the root namespace: one that the packages
# started anyway (by PID, only those in this script's namespace, the root
# one) is stopped.
root_ns=$(readlink /proc/self/ns/net)
for pid in $(for d in zebra bgpd watchfrr staticd bird; do pgrep -x "$d" || true; done); do
	if [[ $(readlink "/proc/$pid/ns/net" 2>/dev/null) == "$root_ns" ]]; then
		echo "stopping $(cat "/proc/$pid/comm") (pid $pid), started in the root namespace by its package"
		kill "$pid" || true
	fi
done

