package ingest

import "testing"

func TestRejectionReason(t *testing.T) {
	for _, tc := range []struct {
		status  int
		message string
		bearer  bool
		want    string
	}{
		{401, "missing or wrong bearer token", true, ReasonToken},
		{401, "X-Twilio-Signature missing or wrong", false, ReasonSignature},
		{401, "no webhook-signature matches", false, ReasonSignature},
		{401, "signature timestamp is 10m0s away from now (window 5m0s): stale or replayed", false, ReasonSignature},
		{401, "Verification-Token missing or wrong", false, ReasonToken},
		{401, "clientState missing or wrong", false, ReasonToken},
		{403, "the token belongs to source a but the event names b", true, ReasonWrongSource},
		{413, "body larger than 1 bytes", false, ReasonTooLarge},
		{415, "Content-Type must be application/json", true, ReasonMediaType},
		{400, "invalid event", false, ReasonInvalid},
		{422, "", false, ReasonInvalid},
		{202, "", false, ""},
		{503, "queue full", false, ""},
	} {
		if got := rejectionReason(tc.status, tc.message, tc.bearer); got != tc.want {
			t.Errorf("%d %q: %q, want %q", tc.status, tc.message, got, tc.want)
		}
	}
}
