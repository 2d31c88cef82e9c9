#!/usr/bin/env bash
# Runs ironlb on its built-in lab (e2etest/lab): a control plane, nodes, a
# client on the nodes' segment, FRR and BIRD, and a client behind FRR, all
# in network namespaces of this machine. It installs ironlb's CRDs and
# samples, runs the controller and a speaker per node, and shows what a
# user sees — saying plainly what does not work yet. Then it tears the lab
# down, unless KEEP=1: then the lab stays up in the background and the
# demo prints how to use it and how to tear it down (make demo-down).
#
#   make demo            # show, then tear down
#   make demo KEEP=1     # show, and leave the lab running
#   make demo NODES=5    # more nodes (1-8)
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
	echo "make demo needs root: the lab builds network namespaces." >&2
	exit 1
fi
# A fresh machine lacks the routers and nftables: install them first.
hack/packages.sh
go build -o bin/lab ./e2etest/cmd/lab
args=(demo)
if [[ -n ${KEEP:-} && ${KEEP} != 0 ]]; then
	args+=(-keep)
fi
if [[ -n ${NODES:-} ]]; then
	args+=(-nodes "$NODES")
fi
# bin/lab tears the lab down itself, on Ctrl-C too.
exec bin/lab "${args[@]}"
