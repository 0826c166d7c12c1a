package identity

import (
	"context"
	"strings"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/graphclient"
)

// UserFinder finds users by a property's value (graphclient.Client).
type UserFinder interface {
	FindUsers(ctx context.Context, property, value string) ([]graphclient.User, error)
}

// Phones resolves "tel:" and "ext:" keys through Graph's users, as each
// tenant's phone_lookup says: a tel: number against the configured
// properties in order, an ext: extension against the configured extension
// attribute. Exactly one user must match; none or several make the key
// unknown.
type Phones struct {
	// Client returns the tenant's Graph client.
	Client func(tenant string) (UserFinder, error)
	// Config is each tenant's phone_lookup.
	Config map[string]config.PhoneLookup
}

// Find is a LookupFunc for Options.PhoneLookup; key is normalised
// ("tel:+15551234567", "ext:1001").
func (p Phones) Find(ctx context.Context, tenant, key string) (string, error) {
	cfg := p.Config[tenant]
	kind, value, _ := strings.Cut(key, ":")
	var properties []string
	switch kind {
	case "tel":
		properties = cfg.Properties
	case "ext":
		if cfg.ExtensionAttribute != "" {
			properties = []string{cfg.ExtensionAttribute}
		}
	}
	if len(properties) == 0 || value == "" {
		return "", unknown(key, "no property to look it up by")
	}
	c, err := p.Client(tenant)
	if err != nil {
		return "", err
	}
	for _, property := range properties {
		users, err := c.FindUsers(ctx, property, value)
		if err != nil {
			return "", err
		}
		switch len(users) {
		case 0:
			continue
		case 1:
			return strings.ToLower(users[0].ID), nil
		}
		return "", unknown(key, "more than one user has it as "+property)
	}
	return "", unknown(key, "no user has it")
}

// unknown is the permanent failure of a key no single user has.
func unknown(key, why string) error { return unknownUser(key, why, "") }
