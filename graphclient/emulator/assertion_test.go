package emulator

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"testing"
	"time"
)

// testCredential is an app certificate and its key.
type testCredential struct {
	key  *rsa.PrivateKey
	cert string // PEM
	x5t  string
}

func newTestCredential(t testing.TB) testCredential {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "app"}, NotBefore: t0.Add(-time.Hour), NotAfter: t0.Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha1.Sum(der)
	return testCredential{key: key, cert: string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), x5t: base64.RawURLEncoding.EncodeToString(sum[:])}
}

// sign makes a client assertion from header and claims, signed with key.
func (c testCredential) sign(t testing.TB, header, claims map[string]any) string {
	t.Helper()
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(claims)
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, c.key, crypto.SHA256, digest[:])
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestCheckAssertion(t *testing.T) {
	cred, other := newTestCredential(t), newTestCredential(t)
	app := App{ClientID: "app-1", Certificate: cred.cert}
	const aud = "https://login.microsoftonline.com/contoso.example/oauth2/v2.0/token"
	header := func() map[string]any { return map[string]any{"alg": "RS256", "typ": "JWT", "x5t": cred.x5t} }
	claims := func() map[string]any {
		return map[string]any{"aud": aud, "iss": "app-1", "sub": "app-1", "jti": "j", "nbf": t0.Unix(), "exp": t0.Add(10 * time.Minute).Unix()}
	}
	with := func(m map[string]any, k string, v any) map[string]any { m[k] = v; return m }
	valid := cred.sign(t, header(), claims())
	// Tamper with one character of the claims, to a different one (the
	// middle character is an "x" one time in 64).
	mid, swap := len(valid)/2, "x"
	if valid[mid] == 'x' {
		swap = "y"
	}
	tampered := valid[:mid] + swap + valid[mid+1:]
	tests := []struct {
		name      string
		app       App
		kind      string
		assertion string
		now       time.Time
		aadsts    int // 0: accepted
	}{
		{"valid", app, assertionType, valid, t0, 0},
		{"valid within the skew", app, assertionType, valid, t0.Add(14 * time.Minute), 0},
		{"expired", app, assertionType, valid, t0.Add(16 * time.Minute), 700024},
		{"not yet valid", app, assertionType, valid, t0.Add(-6 * time.Minute), 700024},
		{"wrong assertion type", app, "urn:other", valid, t0, 50027},
		{"no certificate registered", App{ClientID: "app-1", ClientSecret: "s"}, assertionType, valid, t0, 700027},
		{"another key", app, assertionType, other.sign(t, header(), claims()), t0, 700027},
		{"another key under our x5t", app, assertionType, other.sign(t, with(header(), "x5t", cred.x5t), claims()), t0, 700027},
		{"HS256", app, assertionType, cred.sign(t, with(header(), "alg", "HS256"), claims()), t0, 700027},
		{"tampered claims", app, assertionType, tampered, t0, 0},
		{"wrong audience", app, assertionType, cred.sign(t, header(), with(claims(), "aud", "https://login.microsoftonline.com/fabrikam.example/oauth2/v2.0/token")), t0, 50027},
		{"wrong issuer", app, assertionType, cred.sign(t, header(), with(claims(), "iss", "app-2")), t0, 700021},
		{"no expiry", app, assertionType, cred.sign(t, header(), with(claims(), "exp", 0)), t0, 700024},
		{"not a JWT", app, assertionType, "abc", t0, 50027},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := checkAssertion(tt.app, "contoso.example", tt.kind, tt.assertion, tt.now)
			if tt.name == "tampered claims" { // any failure will do, never acceptance
				if f == nil {
					t.Fatal("a tampered assertion was accepted")
				}
				return
			}
			switch {
			case tt.aadsts == 0 && f != nil:
				t.Fatalf("refused: AADSTS%d %s", f.aadsts, f.description)
			case tt.aadsts != 0 && (f == nil || f.aadsts != tt.aadsts):
				t.Fatalf("got %+v, want AADSTS%d", f, tt.aadsts)
			}
		})
	}
}

func FuzzCheckAssertion(f *testing.F) {
	cred := newTestCredential(f)
	app := App{ClientID: "app-1", Certificate: cred.cert}
	valid := cred.sign(f, map[string]any{"alg": "RS256", "x5t": cred.x5t}, map[string]any{"aud": "x/contoso.example/oauth2/v2.0/token", "iss": "app-1", "sub": "app-1", "exp": t0.Unix()})
	f.Add(valid)
	f.Add("a.b.c")
	signed := valid[:strings.LastIndexByte(valid, '.')]
	f.Fuzz(func(t *testing.T, assertion string) {
		_ = assertionIssuer(assertion)
		if checkAssertion(app, "contoso.example", assertionType, assertion, t0) == nil && !strings.HasPrefix(assertion, signed+".") {
			t.Fatalf("accepted an assertion nobody signed: %q", assertion)
		}
	})
}
