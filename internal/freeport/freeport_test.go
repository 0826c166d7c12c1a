package freeport

import (
	"io"
	"net"
	"strconv"
	"testing"
)

// TestPortIsFreeAndBelowTheEphemeralRange: the port is below the range
// the kernel hands out, and both TCP and UDP can bind it.
func TestPortIsFreeAndBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		port, err := Port()
		if err != nil {
			t.Fatal(err)
		}
		if port < lowest || port >= ephemeralStart() {
			t.Fatalf("port %d, want within [%d, %d)", port, lowest, ephemeralStart())
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("port %d is not free for TCP: %v", port, err)
		}
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err != nil {
			t.Fatalf("port %d is not free for UDP: %v", port, err)
		}
		u.Close()
	}
}

// TestTakenPortIsNotFree: a port bound for TCP or for UDP is not free.
func TestTakenPortIsNotFree(t *testing.T) {
	for _, bind := range []struct {
		network string
		listen  func() (io.Closer, int, error)
	}{
		{"tcp", func() (io.Closer, int, error) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, 0, err
			}
			return l, l.Addr().(*net.TCPAddr).Port, nil
		}},
		{"udp", func() (io.Closer, int, error) {
			u, err := net.ListenPacket("udp", "127.0.0.1:0")
			if err != nil {
				return nil, 0, err
			}
			return u, u.LocalAddr().(*net.UDPAddr).Port, nil
		}},
	} {
		c, port, err := bind.listen()
		if err != nil {
			t.Fatal(err)
		}
		if free(port) {
			t.Errorf("a port bound for %s is reported free", bind.network)
		}
		c.Close()
	}
}
