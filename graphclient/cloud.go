package graphclient

import (
	"errors"
	"fmt"
	"strings"
)

// Cloud names a Microsoft cloud's endpoints.
type Cloud struct {
	// Name is the name CloudByName knows it by.
	Name string
	// GraphURL is Graph's root, without a version, such as
	// "https://graph.microsoft.com".
	GraphURL string
	// LoginURL is the identity platform's root, such as
	// "https://login.microsoftonline.com".
	LoginURL string
	// Presence says whether the cloud offers Graph's presence API.
	Presence bool
}

// ErrUnknownCloud is a cloud name CloudByName does not know.
var ErrUnknownCloud = errors.New("unknown cloud")

// clouds lists the national clouds. Tokens from one do not work in another.
//
// China (operated by 21Vianet) has Graph but no presence API. A Client for
// it is created (users and calendars work), but its presence calls fail with
// ErrPresenceUnavailable before any request, instead of spending the
// tenant's budget on answers that can only be errors.
var clouds = []Cloud{
	{Name: "global", GraphURL: "https://graph.microsoft.com", LoginURL: "https://login.microsoftonline.com", Presence: true},
	{Name: "usgov", GraphURL: "https://graph.microsoft.us", LoginURL: "https://login.microsoftonline.us", Presence: true},
	{Name: "usgovdod", GraphURL: "https://dod-graph.microsoft.us", LoginURL: "https://login.microsoftonline.us", Presence: true},
	{Name: "china", GraphURL: "https://microsoftgraph.chinacloudapi.cn", LoginURL: "https://login.chinacloudapi.cn", Presence: false},
}

// CloudByName returns a cloud by name: "global" (also ""), "usgov" (GCC
// High), "usgovdod" (DoD) or "china" (21Vianet, without presence). Names
// are case-insensitive.
func CloudByName(name string) (Cloud, error) {
	key := strings.ToLower(strings.TrimSpace(name))
	if key == "" {
		key = "global"
	}
	names := make([]string, len(clouds))
	for i, c := range clouds {
		if c.Name == key {
			return c, nil
		}
		names[i] = c.Name
	}
	return Cloud{}, fmt.Errorf("%w %q (one of %s)", ErrUnknownCloud, name, strings.Join(names, ", "))
}
