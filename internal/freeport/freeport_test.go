package freeport

import (
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if free(l.Addr().(*net.TCPAddr).Port) {
		t.Error("a port bound for TCP is reported free")
	}
	u, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u.Close()
	if free(u.LocalAddr().(*net.UDPAddr).Port) {
		t.Error("a port bound for UDP is reported free")
	}
}
