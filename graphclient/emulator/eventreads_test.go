package emulator

import (
	"testing"

	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// TestEventReadFaults: event reads can be held until released and failed,
// and neither touches other endpoints.
func TestEventReadFaults(t *testing.T) {
	h := newHarness(t)
	calendar := h.appToken(tenantID, "calendar", "calendar-secret")
	if status, body := h.admin("POST", "/_emulator/events", `{"id":"e1","user":"alice@contoso.example","start":"2026-11-23T11:00:00Z","end":"2026-11-23T12:00:00Z"}`); status != 200 {
		t.Fatalf("seed: %d %v", status, body)
	}
	read := func() int {
		status, _ := h.do("GET", "/v1.0/users/"+alice+"/events/e1", nil, calendar)
		return status
	}

	release := h.em.HoldEventReads()
	done := make(chan int, 1)
	go func() { done <- read() }()
	testpoll.Until(t, "the read is held", func() bool { return h.em.HeldEventReads() == 1 })
	if status := h.set(alice, "Busy", "InACall", "PT5M"); status != 200 {
		t.Fatalf("a presence call while event reads are held: %d", status)
	}
	select {
	case status := <-done:
		t.Fatalf("a held read was answered (%d) before release", status)
	default:
	}
	release()
	release() // idempotent
	if status := <-done; status != 200 {
		t.Fatalf("released read: %d", status)
	}
	if n := h.em.HeldEventReads(); n != 0 {
		t.Fatalf("%d reads still held", n)
	}

	h.em.FailEventReads(2, 500)
	for i, want := range []int{500, 500, 200} {
		if status := read(); status != want {
			t.Fatalf("read %d: %d, want %d", i, status, want)
		}
	}
	if status, _ := h.do("GET", "/v1.0/users/"+alice+"/presence", nil); status != 200 {
		t.Fatalf("presence read: %d", status)
	}

	// ClearFaults lets held reads go.
	h.em.HoldEventReads()
	go func() { done <- read() }()
	testpoll.Until(t, "the read is held", func() bool { return h.em.HeldEventReads() == 1 })
	h.em.ClearFaults()
	if status := <-done; status != 200 {
		t.Fatalf("read let go by ClearFaults: %d", status)
	}
}
