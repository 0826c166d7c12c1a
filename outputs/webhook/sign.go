package webhook

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"

	"github.com/presence-bridge/presence-bridge/outputs"
)

// Body is what a receiver gets: the Standard Webhooks payload convention
// of a type, a timestamp and the data, here the person's view with the
// pair seen before.
type Body struct {
	Type      string         `json:"type"`
	Timestamp time.Time      `json:"timestamp"`
	Data      outputs.Change `json:"data"`
}

// Encode returns c's body; its timestamp is when the watcher read the
// change, so that every try of it sends the same body.
func Encode(c outputs.Change) ([]byte, error) {
	b, err := json.Marshal(Body{Type: outputs.ChangeType, Timestamp: c.SeenAt.UTC(), Data: c})
	if err != nil {
		return nil, fmt.Errorf("encode change %s: %w", c.ID, err)
	}
	return b, nil
}

// Sign returns the webhook-signature header of the message id sent at
// ts with body: one "v1,<base64>" per signer, separated by spaces.
func Sign(signers []*standardwebhooks.Webhook, id string, ts time.Time, body []byte) (string, error) {
	sigs := make([]string, 0, len(signers))
	for _, s := range signers {
		sig, err := s.Sign(id, ts, body)
		if err != nil {
			return "", fmt.Errorf("sign: %w", err)
		}
		sigs = append(sigs, sig)
	}
	return strings.Join(sigs, " "), nil
}
