package sockopt

import (
	"net"
	"os"
	"syscall"
	"testing"
)

// TestReadBuffer sets a read buffer beyond net.core.rmem_max: as root
// (CAP_NET_ADMIN) it is what was asked (Linux reports twice the size, its
// bookkeeping included); without, it is set as far as the limit allows.
func TestReadBuffer(t *testing.T) {
	conn, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const n = 8 << 20
	if err := ReadBuffer(conn.(*net.UDPConn), n); err != nil {
		t.Fatal(err)
	}
	rc, err := conn.(*net.UDPConn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var got int
	var gerr error
	if err := rc.Control(func(fd uintptr) {
		got, gerr = syscall.GetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF)
	}); err != nil || gerr != nil {
		t.Fatal(err, gerr)
	}
	if os.Geteuid() == 0 {
		if got != 2*n {
			t.Errorf("read buffer %d bytes, want %d", got, 2*n)
		}
	} else if got <= 0 {
		t.Errorf("read buffer %d bytes", got)
	}
}
