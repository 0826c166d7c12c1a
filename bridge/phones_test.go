package bridge_test

import (
	"net/http"
	"strings"
	"testing"
	"time"
)

// TestPhoneNumbersResolvedThroughGraph: with phone_lookup on, a call for a
// number nobody put in the directory reaches the user whose business
// phone it is; with it off (the default), the same event is refused as
// an unknown user.
func TestPhoneNumbersResolvedThroughGraph(t *testing.T) {
	for _, on := range []bool{true, false} {
		t.Run(map[bool]string{true: "on", false: "off"}[on], func(t *testing.T) {
			cfg := testConfig(t)
			cfg = strings.Replace(cfg, "{id: "+bobID+", user_principal_name: bob@contoso.example}", "{id: "+bobID+", user_principal_name: bob@contoso.example, business_phones: [\"+15551230002\"]}", 1)
			if on {
				cfg = strings.Replace(cfg, "      client_secret: demo-secret\n  timeout", "      client_secret: demo-secret\n      phone_lookup: {enabled: true}\n  timeout", 1)
			}
			b := startBridge(t, cfg)
			if r := postEvent(t, b, callEvent("p1", "tel:+1 555 123 0002", "c1", "active", time.Now())); r.status != http.StatusAccepted {
				t.Fatalf("post: %d %v", r.status, r.body)
			}
			if on {
				waitPresence(t, b, bobID, "Busy/InACall", 30*time.Second)
				return
			}
			// Off: the event is dead-lettered as an unknown user.
			letters := waitDeadLetters(t, b, 1)
			if !strings.Contains(letters[0].Reason, "unknown user") {
				t.Fatalf("dead letter reason %q", letters[0].Reason)
			}
		})
	}
}
