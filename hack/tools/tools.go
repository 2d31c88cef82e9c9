//go:build tools

// Package tools pins the code generators the Makefile runs.
package tools

import (
	_ "golang.org/x/perf/cmd/benchstat"
	_ "sigs.k8s.io/controller-tools/cmd/controller-gen"
)
