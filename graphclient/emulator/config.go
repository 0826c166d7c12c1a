package emulator

import (
	"errors"
	"fmt"
	"time"
)

// Config is the emulator's configuration. The bridge embeds it under
// graph.emulator; `presence-bridge emulator` also reads it on its own.
type Config struct {
	// Enabled starts the emulator inside the bridge.
	Enabled bool `yaml:"enabled"`
	// Listen is the address to serve on, such as 127.0.0.1:8081.
	Listen string `yaml:"listen"`
	// Tenants are the tenants, applications and users the emulator knows.
	Tenants []Tenant `yaml:"tenants"`
	// Throttle is Graph's presence request limit per application.
	Throttle Throttle `yaml:"throttle"`
	// Admin sets what the /_emulator/ API may change.
	Admin Admin `yaml:"admin"`
}

// Tenant is one emulated Entra tenant.
type Tenant struct {
	ID    string `yaml:"id"`
	Apps  []App  `yaml:"apps"`
	Users []User `yaml:"users"`
}

// App is an application registration with its granted roles.
type App struct {
	ClientID     string   `yaml:"client_id"`
	ClientSecret string   `yaml:"client_secret"`
	Roles        []string `yaml:"roles"`
}

// User is a directory user.
type User struct {
	ID                string `yaml:"id"`
	UserPrincipalName string `yaml:"user_principal_name"`
	DisplayName       string `yaml:"display_name"`
	Mail              string `yaml:"mail"`
}

// Throttle is a fixed-window request limit per application per tenant.
type Throttle struct {
	Limit  int           `yaml:"limit"`
	Window time.Duration `yaml:"window"`
}

// Admin sets what the admin API may do.
type Admin struct {
	// Writes allows fault injection, simulated sessions and reset.
	Writes bool `yaml:"writes"`
	// TestClock allows moving the emulator's clock.
	TestClock bool `yaml:"test_clock"`
}

// SetDefaults fills the keys left out.
func (c *Config) SetDefaults() {
	if c.Listen == "" {
		c.Listen = "127.0.0.1:8081"
	}
	if c.Throttle.Limit == 0 {
		c.Throttle.Limit = 1500
	}
	if c.Throttle.Window == 0 {
		c.Throttle.Window = 30 * time.Second
	}
}

// Validate returns every problem, each naming its key.
func (c Config) Validate() error {
	var errs []error
	add := func(path, problem string) { errs = append(errs, fmt.Errorf("%s: %s", path, problem)) }
	if c.Throttle.Limit < 1 {
		add("throttle.limit", "must be positive")
	}
	if c.Throttle.Window < time.Second {
		add("throttle.window", "must be at least 1s")
	}
	ids := map[string]bool{}
	for i, t := range c.Tenants {
		path := fmt.Sprintf("tenants[%d]", i)
		if t.ID == "" {
			add(path+".id", "required")
		}
		for j, a := range t.Apps {
			if a.ClientID == "" {
				add(fmt.Sprintf("%s.apps[%d].client_id", path, j), "required")
			}
			if a.ClientSecret == "" {
				add(fmt.Sprintf("%s.apps[%d].client_secret", path, j), "required")
			}
		}
		for j, u := range t.Users {
			upath := fmt.Sprintf("%s.users[%d]", path, j)
			if u.ID == "" {
				add(upath+".id", "required")
			}
			if ids[u.ID] {
				add(upath+".id", fmt.Sprintf("duplicate user %q", u.ID))
			}
			ids[u.ID] = true
			if u.UserPrincipalName == "" {
				add(upath+".user_principal_name", "required")
			}
		}
	}
	return errors.Join(errs...)
}
