package graphclient

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
)

// User properties FindUsers matches.
const (
	BusinessPhones = "businessPhones"
	MobilePhone    = "mobilePhone"
)

var extensionAttributeName = regexp.MustCompile(`^extensionAttribute([1-9]|1[0-5])$`)

// maxMatchValue bounds the value FindUsers looks for.
const maxMatchValue = 128

// FindUsers returns up to two users whose property equals value (needs
// User.Read.All): businessPhones (any of them), mobilePhone, or an
// extensionAttribute1..15 of onPremisesExtensionAttributes. It sends
// Graph's advanced query parameters (ConsistencyLevel: eventual and
// $count=true), which mobilePhone and the extension attributes need. Two
// users mean the value is ambiguous.
func (c *Client) FindUsers(ctx context.Context, property, value string) ([]User, error) {
	op := "find users by " + property
	if value == "" || len(value) > maxMatchValue || strings.ContainsFunc(value, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return nil, fmt.Errorf("%s: %w: value must be 1 to %d printable characters", op, ErrInvalidArgument, maxMatchValue)
	}
	quoted := "'" + strings.ReplaceAll(value, "'", "''") + "'"
	var filter string
	switch {
	case property == BusinessPhones:
		filter = "businessPhones/any(p:p eq " + quoted + ")"
	case property == MobilePhone:
		filter = "mobilePhone eq " + quoted
	case extensionAttributeName.MatchString(property):
		filter = "onPremisesExtensionAttributes/" + property + " eq " + quoted
	default:
		return nil, fmt.Errorf("%s: %w: unknown property", op, ErrInvalidArgument)
	}
	q := url.Values{"$filter": {filter}, "$count": {"true"}, "$select": {"id,userPrincipalName,mail,displayName"}, "$top": {"2"}}
	var out struct {
		Value []User `json:"value"`
	}
	r := request{op: op, method: http.MethodGet, path: "/users?" + q.Encode(), header: http.Header{"ConsistencyLevel": {"eventual"}}}
	if err := c.do(ctx, r, &out); err != nil {
		return nil, err
	}
	return out.Value, nil
}
