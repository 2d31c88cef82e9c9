// Package daemon holds what ironlb's two programs, the controller and the
// speaker, share when they start: the common flags, logging, the connection
// to the API server, and a controller-runtime manager that serves /healthz,
// /readyz and /metrics and stops on SIGTERM.
package daemon
