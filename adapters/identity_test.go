package adapters

import "testing"

func TestNormalizeIdentity(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"Alice@Contoso.Example", "alice@contoso.example"},
		{" alice@contoso.example ", "alice@contoso.example"},
		{"sip:alice@example.com;transport=tls", "alice@example.com"},
		{"SIP:Alice@Example.sip.twilio.com", "alice@example.sip.twilio.com"},
		{"sip:+1 555 123 4567@pbx.example;user=phone", "tel:+15551234567"},
		{"sips:1001@pbx", "tel:1001"},
		{"tel:+1-555-123-4567", "tel:+15551234567"},
		{"tel:+15551234567;ext=12", "tel:+15551234567"},
		{"+1 (555) 123-4567", "tel:+15551234567"},
		{"0015551234567", "tel:+15551234567"},
		{"+4930123456", "tel:+4930123456"},
		{"EXT:1001", "ext:1001"},
		{"client:Alice", "client:alice"},
		{"zoom:AbC123", "zoom:abc123"},
		{"12", "12"},
		{"00000000-0000-0000-0000-000000000006", "00000000-0000-0000-0000-000000000006"},
		{"FA8BF3DC-ECA7-46B7-BAD1-DB199B62AFC3", "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"},
		{"", ""},
	} {
		if got := NormalizeIdentity(tt.in); got != tt.want {
			t.Errorf("NormalizeIdentity(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzNormalizeIdentity(f *testing.F) {
	for _, s := range []string{"sip:+1 555@x;user=phone", "tel:00+", "Alice@X", "ext:1", "sip:", "+"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		once := NormalizeIdentity(s)
		if twice := NormalizeIdentity(once); twice != once {
			t.Fatalf("not idempotent: %q → %q → %q", s, once, twice)
		}
	})
}

func TestIdentityHints(t *testing.T) {
	h := IdentityHints{CountryCode: "1", Domain: "Contoso.Example"}
	for _, tt := range []struct{ in, want string }{
		{"5551230001", "tel:+15551230001"},
		{"tel:(555) 123-0001", "tel:+15551230001"},
		{"+4930123456", "tel:+4930123456"},
		{"client:Alice", "alice@contoso.example"},
		{"alice", "alice@contoso.example"},
		{"bob@fabrikam.example", "bob@fabrikam.example"},
		{"ext:1001", "ext:1001"},
		{"fa8bf3dc-eca7-46b7-bad1-db199b62afc3", "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"},
	} {
		if got := h.Apply(tt.in); got != tt.want {
			t.Errorf("Apply(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	if got := (IdentityHints{}).Apply("client:Alice"); got != "client:alice" {
		t.Errorf("no hints: %q", got)
	}
}
