// Command lab brings up ironlb's end-to-end lab by hand — a control
// plane, nodes, clients, FRR and BIRD in network namespaces — and runs the
// demo. `lab -h` lists its commands. It needs root.
package main

import (
	"os"

	"github.com/ironlb/ironlb/e2etest/labctl"
)

func main() {
	os.Exit(labctl.Run(os.Args[1:], os.Stdout, os.Stderr))
}
