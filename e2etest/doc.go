// Package e2etest holds ironlb's end-to-end tests and the lab they run
// on: lab (the lab itself), labctl and cmd/lab (the command that drives it
// by hand and runs the demo).
package e2etest
