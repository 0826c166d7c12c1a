package writer

import (
	"strings"
	"testing"
	"time"
)

// TestOptionsCheck: New applies no default of its own for a setting the
// configuration has one for: it names every one left out.
func TestOptionsCheck(t *testing.T) {
	full := withDefaults(Options{Tenants: []TenantOptions{contoso}, Graph: newFakeGraph(&fakeClock{now: t0})})
	if err := full.check(); err != nil {
		t.Fatalf("full options: %v", err)
	}
	for _, tt := range []struct {
		name  string
		unset func(o *Options)
	}{
		{"Replicas", func(o *Options) { o.Replicas = 0 }},
		{"Expiration", func(o *Options) { o.Expiration = 0 }},
		{"LeaseTTL", func(o *Options) { o.LeaseTTL = 0 }},
		{"BreakerFailures", func(o *Options) { o.BreakerFailures = 0 }},
		{"BreakerTimeout", func(o *Options) { o.BreakerTimeout = 0 }},
		{"RetryDelay", func(o *Options) { o.RetryDelay = 0 }},
		{"MaxRetryDelay", func(o *Options) { o.MaxRetryDelay = 0 }},
		{"RefusalProbe", func(o *Options) { o.RefusalProbe = 0 }},
		{"RefusalProbeMax", func(o *Options) { o.RefusalProbeMax = 0 }},
		{"StatusExpiry", func(o *Options) { o.StatusMessages, o.StatusExpiry = map[string]string{"call": "On a call"}, 0 }},
		{"Budget and Window of tenant contoso.example", func(o *Options) { o.Tenants = []TenantOptions{{ID: "contoso.example", Window: time.Second}} }},
		{"Budget and Window of tenant contoso.example", func(o *Options) { o.Tenants = []TenantOptions{{ID: "contoso.example", Budget: 5}} }},
	} {
		o := full
		tt.unset(&o)
		err := o.check()
		if err == nil || !strings.Contains(err.Error(), tt.name) {
			t.Errorf("without %s: %v", tt.name, err)
		}
	}
	off := full
	off.StatusExpiry = 0 // no status messages: no expiry needed
	if err := off.check(); err != nil {
		t.Fatalf("StatusExpiry required without status messages: %v", err)
	}
}
