// Package freeport finds loopback ports for the servers that tests and
// load runs start themselves.
//
// A port is looked for below the kernel's ephemeral range: a port the
// kernel hands out (to a listener on port 0 or to an outgoing
// connection) may be taken by anyone between the look and the server's
// bind, and a busy test run makes thousands of such connections. Below
// the range, only an explicit bind can take it.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
)

// lowest is the lowest port handed out, above the well-known and most
// registered ports.
const lowest = 10000

// tries bounds the ports tried before giving up.
const tries = 200

// rangeFile holds the kernel's ephemeral port range on Linux.
const rangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

// Port returns a port on 127.0.0.1 that is free for both TCP and UDP
// now, and outside the kernel's ephemeral range.
func Port() (int, error) {
	highest := ephemeralStart() - 1
	if highest-lowest < 1000 {
		return 0, fmt.Errorf("find a free port: the ephemeral range starts at %d, too low to stay below", highest+1)
	}
	for range tries {
		port := lowest + rand.IntN(highest-lowest+1)
		if free(port) {
			return port, nil
		}
	}
	return 0, errors.New("find a free port: every port tried was taken")
}

// Addr returns 127.0.0.1:<Port()>.
func Addr() (string, error) {
	port, err := Port()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// free reports whether port can be bound on 127.0.0.1 for TCP and UDP.
func free(port int) bool {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	defer l.Close()
	u, err := net.ListenPacket("udp", addr)
	if err != nil {
		return false
	}
	u.Close()
	return true
}

// ephemeralStart returns the first port of the kernel's ephemeral range:
// Linux's, else the IANA range's start, which other systems use.
func ephemeralStart() int {
	const iana = 49152
	b, err := os.ReadFile(rangeFile)
	if err != nil {
		return iana
	}
	fields := strings.Fields(string(b))
	if len(fields) != 2 {
		return iana
	}
	start, err := strconv.Atoi(fields[0])
	if err != nil || start <= 0 {
		return iana
	}
	return start
}
