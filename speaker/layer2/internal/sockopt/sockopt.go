// Package sockopt sets the socket options the layer-2 responders share.
package sockopt

import (
	"errors"
	"fmt"
	"syscall"
)

// ReadBuffer sets the receive buffer of conn's socket to n bytes: beyond
// the system's limit (net.core.rmem_max) with CAP_NET_ADMIN, else as far as
// that limit allows. It returns the error of the first attempt when the
// second fails too.
func ReadBuffer(conn syscall.Conn, n int) error {
	rc, err := conn.SyscallConn()
	if err != nil {
		return fmt.Errorf("set the read buffer: %w", err)
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUFFORCE, n)
		if errors.Is(serr, syscall.EPERM) {
			if err := syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, n); err == nil {
				serr = nil
			}
		}
	}); err != nil {
		return fmt.Errorf("set the read buffer: %w", err)
	}
	if serr != nil {
		return fmt.Errorf("set the read buffer to %d bytes: %w", n, serr)
	}
	return nil
}
