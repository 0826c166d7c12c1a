package graphclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Subscription is a change notification subscription.
type Subscription struct {
	ID string `json:"id,omitempty"`
	// Resource is what is watched, such as "users/{id}/events".
	Resource string `json:"resource,omitempty"`
	// ChangeType is a comma-separated list of created, updated, deleted.
	ChangeType      string `json:"changeType,omitempty"`
	NotificationURL string `json:"notificationUrl,omitempty"`
	// LifecycleNotificationURL receives reauthorizationRequired,
	// subscriptionRemoved and missed.
	LifecycleNotificationURL string    `json:"lifecycleNotificationUrl,omitempty"`
	ExpirationDateTime       time.Time `json:"expirationDateTime"`
	// ClientState comes back in every notification; it is never printed.
	ClientState   string `json:"clientState,omitempty"`
	ApplicationID string `json:"applicationId,omitempty"`
}

// String describes the subscription without its clientState.
func (s Subscription) String() string {
	return fmt.Sprintf("subscription %s on %s until %s", s.ID, s.Resource, s.ExpirationDateTime.Format(time.RFC3339))
}

// GoString is String, so that %#v shows no clientState either.
func (s Subscription) GoString() string { return s.String() }

// maxSubscriptionPages bounds how many pages ListSubscriptions follows.
const maxSubscriptionPages = 100

// CreateSubscription creates s (ID is ignored) and returns it as Graph
// keeps it. Graph first sends the validation request to the notification
// URLs; a failed handshake is a 400 *Error.
func (c *Client) CreateSubscription(ctx context.Context, s Subscription) (Subscription, error) {
	op := "create subscription on " + s.Resource
	if strings.TrimSpace(s.Resource) == "" || strings.TrimSpace(s.NotificationURL) == "" || s.ExpirationDateTime.IsZero() {
		return Subscription{}, fmt.Errorf("%s: %w: resource, notification URL and expiration are required", op, ErrInvalidArgument)
	}
	s.ID, s.ApplicationID = "", ""
	body := map[string]any{
		"changeType": s.ChangeType, "notificationUrl": s.NotificationURL, "resource": s.Resource,
		"expirationDateTime": s.ExpirationDateTime.UTC().Format(time.RFC3339Nano), "clientState": s.ClientState,
	}
	if s.LifecycleNotificationURL != "" {
		body["lifecycleNotificationUrl"] = s.LifecycleNotificationURL
	}
	var out Subscription
	if err := c.do(ctx, request{op: op, method: http.MethodPost, path: "/subscriptions", body: body}, &out); err != nil {
		return Subscription{}, err
	}
	return out, nil
}

// RenewSubscription moves subscription id's expiration to until and
// returns the subscription. An unknown or expired subscription is a 404
// *Error.
func (c *Client) RenewSubscription(ctx context.Context, id string, until time.Time) (Subscription, error) {
	op := "renew subscription " + id
	if strings.TrimSpace(id) == "" {
		return Subscription{}, fmt.Errorf("%s: %w: empty subscription id", op, ErrInvalidArgument)
	}
	var out Subscription
	body := map[string]string{"expirationDateTime": until.UTC().Format(time.RFC3339Nano)}
	if err := c.do(ctx, request{op: op, method: http.MethodPatch, path: "/subscriptions/" + url.PathEscape(id), body: body}, &out); err != nil {
		return Subscription{}, err
	}
	return out, nil
}

// DeleteSubscription deletes subscription id. An unknown one is a 404
// *Error.
func (c *Client) DeleteSubscription(ctx context.Context, id string) error {
	op := "delete subscription " + id
	if strings.TrimSpace(id) == "" {
		return fmt.Errorf("%s: %w: empty subscription id", op, ErrInvalidArgument)
	}
	return c.do(ctx, request{op: op, method: http.MethodDelete, path: "/subscriptions/" + url.PathEscape(id)}, nil)
}

// ListSubscriptions returns the application's live subscriptions,
// following @odata.nextLink within Graph's host.
func (c *Client) ListSubscriptions(ctx context.Context) ([]Subscription, error) {
	var all []Subscription
	path := "/subscriptions"
	for page := 0; path != ""; page++ {
		if page == maxSubscriptionPages {
			return nil, fmt.Errorf("list subscriptions: more than %d pages", maxSubscriptionPages)
		}
		var out struct {
			Value    []Subscription `json:"value"`
			NextLink string         `json:"@odata.nextLink"`
		}
		if err := c.do(ctx, request{op: "list subscriptions", method: http.MethodGet, path: path}, &out); err != nil {
			return nil, err
		}
		all = append(all, out.Value...)
		path = ""
		if out.NextLink != "" {
			rest, ok := strings.CutPrefix(out.NextLink, c.graphURL)
			if !ok || !strings.HasPrefix(rest, "/") {
				return nil, fmt.Errorf("list subscriptions: next link outside %s", c.graphURL)
			}
			path = rest
		}
	}
	return all, nil
}
