package emulator

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"strings"
	"time"
)

// Config is the emulator's configuration. The bridge embeds it under
// graph.emulator; `presence-bridge emulator --config F` reads the same keys
// at the top level of F.
type Config struct {
	// Enabled starts the emulator inside the bridge's process.
	Enabled bool `yaml:"enabled"`
	// Listen is the address to serve on, such as 127.0.0.1:8081; port 0
	// picks a free port (Addr tells which).
	Listen string `yaml:"listen"`
	// Tenants are the tenants, applications and users the emulator knows.
	Tenants []Tenant `yaml:"tenants"`
	// Throttle is Graph's limit on the presence actions (setPresence,
	// clearPresence and the others) per application per tenant.
	Throttle Throttle `yaml:"throttle"`
	// ReadThrottle is Graph's limit on the presence reads (GET presence,
	// the presence list, getPresencesByUserId) per application per
	// tenant, a budget apart from Throttle.
	ReadThrottle Throttle `yaml:"read_throttle"`
	// Admin sets what the /_emulator/ admin API may change.
	Admin Admin `yaml:"admin"`
}

// Tenant is one emulated Entra tenant, named by its domain or id as it
// appears in the token endpoint's path.
type Tenant struct {
	ID    string `yaml:"id"`
	Apps  []App  `yaml:"apps"`
	Users []User `yaml:"users"`
	// Groups are the tenant's groups with their direct members, for
	// GET /groups/{id}/members.
	Groups []Group `yaml:"groups"`
}

// App is an application registration with its credentials (a secret, a
// certificate or both) and the application permissions (roles) granted to
// it.
type App struct {
	ClientID     string `yaml:"client_id"`
	ClientSecret string `yaml:"client_secret"`
	// Certificate is the PEM certificate whose key signs the app's client
	// assertions (public; no key here).
	Certificate string   `yaml:"certificate"`
	Roles       []string `yaml:"roles"`
}

// User is a directory user. ID is the Entra object id (a GUID).
type User struct {
	ID                string `yaml:"id"`
	UserPrincipalName string `yaml:"user_principal_name"`
	DisplayName       string `yaml:"display_name"`
	Mail              string `yaml:"mail"`
	// BusinessPhones, MobilePhone and ExtensionAttributes (keys
	// extensionAttribute1 to extensionAttribute15) are what
	// GET /users?$filter= matches phone numbers and extensions against.
	BusinessPhones      []string          `yaml:"business_phones"`
	MobilePhone         string            `yaml:"mobile_phone"`
	ExtensionAttributes map[string]string `yaml:"extension_attributes"`
}

// Throttle is a fixed-window request limit per application per tenant:
// at most Limit requests in each Window.
type Throttle struct {
	Limit  int           `yaml:"limit"`
	Window time.Duration `yaml:"window"`
}

// Admin sets what the admin API may do. Reading state and the request log
// is always allowed.
type Admin struct {
	// Writes allows changes through the admin API: simulated sessions,
	// calendar events, injected faults and reset.
	Writes bool `yaml:"writes"`
	// TestClock allows moving the emulator's clock forward through
	// POST /_emulator/clock/advance.
	TestClock bool `yaml:"test_clock"`
}

// Defaults applied by SetDefaults.
const (
	DefaultListen         = "127.0.0.1:8081"
	DefaultThrottleLimit  = 1500
	DefaultThrottleWindow = 30 * time.Second
	// DefaultReadThrottleLimit is the documented limit of
	// getPresencesByUserId: 1,500 requests per 30 s per application per
	// tenant.
	DefaultReadThrottleLimit = 1500
)

// SetDefaults fills the keys left out.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = DefaultListen
	}
	if c.Throttle.Limit == 0 {
		c.Throttle.Limit = DefaultThrottleLimit
	}
	if c.Throttle.Window == 0 {
		c.Throttle.Window = DefaultThrottleWindow
	}
	if c.ReadThrottle.Limit == 0 {
		c.ReadThrottle.Limit = DefaultReadThrottleLimit
	}
	if c.ReadThrottle.Window == 0 {
		c.ReadThrottle.Window = DefaultThrottleWindow
	}
}

var (
	guidPattern = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)
	rolePattern = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9]*(\.[A-Za-z0-9]+)+$`)
)

// Validate returns every problem joined with errors.Join, each naming its
// key relative to the emulator's section, such as
// "tenants[0].apps[1].client_id: required".
func (c Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fmt.Errorf("%s: %s", path, fmt.Sprintf(format, args...)))
	}
	if c.Listen != "" {
		if _, _, err := net.SplitHostPort(c.Listen); err != nil {
			add("listen", "must be host:port, such as 127.0.0.1:8081")
		}
	}
	if c.Throttle.Limit < 1 {
		add("throttle.limit", "must be positive")
	}
	if c.Throttle.Window <= 0 {
		add("throttle.window", "must be positive")
	}
	if c.ReadThrottle.Limit < 1 {
		add("read_throttle.limit", "must be positive")
	}
	if c.ReadThrottle.Window <= 0 {
		add("read_throttle.window", "must be positive")
	}
	tenants, userIDs, upns := map[string]string{}, map[string]string{}, map[string]string{}
	for i, t := range c.Tenants {
		path := fmt.Sprintf("tenants[%d]", i)
		switch key := strings.ToLower(t.ID); {
		case t.ID == "":
			add(path+".id", "required")
		case tenants[key] != "":
			add(path+".id", "duplicate of %s", tenants[key])
		default:
			tenants[key] = path
		}
		clients := map[string]string{}
		for j, a := range t.Apps {
			apath := fmt.Sprintf("%s.apps[%d]", path, j)
			switch {
			case a.ClientID == "":
				add(apath+".client_id", "required")
			case clients[a.ClientID] != "":
				add(apath+".client_id", "duplicate of %s", clients[a.ClientID])
			default:
				clients[a.ClientID] = apath
			}
			if a.ClientSecret == "" && a.Certificate == "" {
				add(apath+".client_secret", "required (or a certificate)")
			}
			if a.Certificate != "" {
				if _, err := parseAppCertificate(a.Certificate); err != nil {
					add(apath+".certificate", "%v", err)
				}
			}
			for k, role := range a.Roles {
				if !rolePattern.MatchString(role) {
					add(fmt.Sprintf("%s.roles[%d]", apath, k), "%q is not a permission name such as Presence.ReadWrite.All", role)
				}
			}
		}
		for j, u := range t.Users {
			upath := fmt.Sprintf("%s.users[%d]", path, j)
			id := strings.ToLower(u.ID)
			switch {
			case u.ID == "":
				add(upath+".id", "required")
			case !guidPattern.MatchString(u.ID):
				add(upath+".id", "must be an object id (a GUID)")
			case userIDs[id] != "":
				add(upath+".id", "duplicate of %s", userIDs[id])
			default:
				userIDs[id] = upath
			}
			upn := strings.ToLower(u.UserPrincipalName)
			switch {
			case u.UserPrincipalName == "":
				add(upath+".user_principal_name", "required")
			case !strings.Contains(u.UserPrincipalName, "@"):
				add(upath+".user_principal_name", "must look like name@domain")
			case upns[upn] != "":
				add(upath+".user_principal_name", "duplicate of %s", upns[upn])
			default:
				upns[upn] = upath
			}
			for name := range u.ExtensionAttributes {
				if !extensionAttributePattern.MatchString(name) {
					add(upath+".extension_attributes", "%q is not extensionAttribute1 to extensionAttribute15", name)
				}
			}
		}
	}
	for i, t := range c.Tenants {
		validateGroups(fmt.Sprintf("tenants[%d]", i), t, userIDs, add)
	}
	return errors.Join(errs...)
}

// validateGroups checks a tenant's groups: object ids unique among users
// and groups, members users or other groups of the same tenant.
func validateGroups(path string, t Tenant, userIDs map[string]string, add func(path, format string, args ...any)) {
	inTenant := map[string]bool{}
	for _, u := range t.Users {
		inTenant[strings.ToLower(u.ID)] = true
	}
	groups := map[string]string{}
	for j, g := range t.Groups {
		gpath := fmt.Sprintf("%s.groups[%d]", path, j)
		id := strings.ToLower(g.ID)
		switch {
		case !guidPattern.MatchString(g.ID):
			add(gpath+".id", "must be an object id (a GUID)")
		case userIDs[id] != "":
			add(gpath+".id", "duplicate of %s", userIDs[id])
		case groups[id] != "":
			add(gpath+".id", "duplicate of %s", groups[id])
		default:
			groups[id] = gpath
		}
		if len(g.Members) > maxGroupMembers {
			add(gpath+".members", "more than %d members", maxGroupMembers)
		}
	}
	for j, g := range t.Groups {
		for k, m := range g.Members {
			id := strings.ToLower(m)
			if !inTenant[id] && (groups[id] == "" || strings.EqualFold(m, g.ID)) {
				add(fmt.Sprintf("%s.groups[%d].members[%d]", path, j, k), "%q is no user or other group of this tenant", m)
			}
		}
	}
}
