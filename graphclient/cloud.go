package graphclient

import (
	"fmt"
	"strings"
)

// Cloud names a Microsoft cloud's Graph and identity platform hosts.
type Cloud struct {
	Name     string
	GraphURL string
	LoginURL string
}

var clouds = []Cloud{
	{"global", "https://graph.microsoft.com", "https://login.microsoftonline.com"},
	{"usgov", "https://graph.microsoft.us", "https://login.microsoftonline.us"},
	{"usgovdod", "https://dod-graph.microsoft.us", "https://login.microsoftonline.us"},
	// Presence is not offered in the China cloud: Graph there answers
	// presence calls with an error, which the bridge reports as permanent.
	{"china", "https://microsoftgraph.chinacloudapi.cn", "https://login.chinacloudapi.cn"},
}

// CloudByName returns a cloud by name; the empty name is global.
func CloudByName(name string) (Cloud, error) {
	if name == "" {
		name = "global"
	}
	names := make([]string, len(clouds))
	for i, c := range clouds {
		if c.Name == name {
			return c, nil
		}
		names[i] = c.Name
	}
	return Cloud{}, fmt.Errorf("unknown cloud %q (one of %s)", name, strings.Join(names, ", "))
}
