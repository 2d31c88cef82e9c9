// Package labctl is the lab command (e2etest/cmd/lab): it brings a lab up
// (in the foreground, or detached so that it outlives the command), tears
// it down, removes what crashed runs left behind, and runs the demo that
// `make demo` shows: ironlb's samples on a lab, and what a user sees of
// them.
package labctl
