package graphclient

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

// newCertificate returns a self-signed certificate for key as PEM.
func newCertificate(t testing.TB, key any, public any) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "presence-bridge test"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, public, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// newBundle returns a certificate and its RSA key as one PEM bundle, and
// the certificate alone.
func newBundle(t testing.TB) (bundle, cert []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	cert = newCertificate(t, key, &key.PublicKey)
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	return append(append([]byte{}, cert...), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})...), cert
}

func TestParseCertificate(t *testing.T) {
	bundle, cert := newBundle(t)
	other, _ := newBundle(t)
	otherKey := other[strings.Index(string(other), "-----BEGIN PRIVATE KEY"):]
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	pkcs1 := append(newCertificate(t, rsaKey, &rsaKey.PublicKey), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(rsaKey)})...)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	ecDER, _ := x509.MarshalPKCS8PrivateKey(ecKey)
	ec := append(newCertificate(t, ecKey, &ecKey.PublicKey), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: ecDER})...)
	tests := []struct {
		name    string
		bundle  []byte
		wantErr string
	}{
		{"certificate and PKCS #8 key", bundle, ""},
		{"certificate and PKCS #1 key", pkcs1, ""},
		{"no key", cert, "no private key block"},
		{"no certificate", []byte(otherKey), "no CERTIFICATE block"},
		{"another certificate's key", append(append([]byte{}, cert...), otherKey...), "does not belong to the certificate"},
		{"not RSA", ec, "not an RSA key"},
		{"garbage", []byte("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n"), "can not be parsed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := parseCertificate(tt.bundle)
			switch {
			case tt.wantErr == "" && (err != nil || c == nil || c.thumbprint == ""):
				t.Fatalf("parse: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("error %v, want one containing %q", err, tt.wantErr)
			case err != nil && strings.Contains(err.Error(), "BEGIN"):
				t.Fatalf("the error repeats PEM data: %v", err)
			}
		})
	}
}

// TestCertificateCredential gets tokens from the emulator with a client
// assertion instead of a secret; a certificate the app does not have is
// refused with the identity platform's invalid_client.
func TestCertificateCredential(t *testing.T) {
	bundle, cert := newBundle(t)
	const tenant, app, user = "contoso.example", "22553876-f5ab-4529-bffb-cfe50aa89f87", "fa8bf3dc-eca7-46b7-bad1-db199b62afc3"
	em, err := emulator.New(emulator.Config{
		Listen: "127.0.0.1:0",
		Tenants: []emulator.Tenant{{
			ID:    tenant,
			Apps:  []emulator.App{{ClientID: app, Certificate: string(cert), Roles: []string{"Presence.ReadWrite.All"}}},
			Users: []emulator.User{{ID: user, UserPrincipalName: "alice@contoso.example"}},
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := em.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.Close() })
	client := func(bundle []byte) *Client {
		c, err := New(Config{TenantID: tenant, ClientID: app, ClientCertificate: bundle, GraphBaseURL: "http://" + em.Addr(), LoginBaseURL: "http://" + em.Addr()})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := client(bundle).SetPresence(context.Background(), user, Pair{"Busy", "InACall"}, 15*time.Minute); err != nil {
		t.Fatalf("set presence with a certificate: %v", err)
	}
	if p, _ := em.Presence(user); p.Activity != "InACall" {
		t.Fatalf("presence %s/%s", p.Availability, p.Activity)
	}
	for _, r := range em.Requests() {
		if strings.HasSuffix(r.Path, "/token") && (!strings.Contains(r.Body, "client_assertion=REDACTED") || strings.Contains(r.Body, "client_secret")) {
			t.Fatalf("token request %q", r.Body)
		}
	}

	stranger, _ := newBundle(t)
	err = client(stranger).SetPresence(context.Background(), user, Pair{"Busy", "InACall"}, 15*time.Minute)
	var tokenErr *TokenError
	if !errors.As(err, &tokenErr) || tokenErr.StatusCode != 401 || tokenErr.Code != "invalid_client" || tokenErr.AADSTS != "AADSTS700027" {
		t.Fatalf("unregistered certificate: %v", err)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Fatal("the error shows the key")
	}

	if _, err := New(Config{TenantID: tenant, ClientID: app, ClientSecret: "s", ClientCertificate: bundle}); err == nil {
		t.Fatal("a secret and a certificate together were accepted")
	}
	cfg := Config{TenantID: tenant, ClientID: app, ClientCertificate: bundle}
	if s := cfg.String(); strings.Contains(s, "BEGIN") || !strings.Contains(s, "ClientCertificate:[redacted]") {
		t.Fatalf("config prints as %s", s)
	}
}

func FuzzParseCertificate(f *testing.F) {
	bundle, cert := newBundle(f)
	f.Add(bundle)
	f.Add(cert)
	f.Add([]byte("-----BEGIN RSA PRIVATE KEY-----\nAA==\n-----END RSA PRIVATE KEY-----\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := parseCertificate(data)
		if (c == nil) == (err == nil) {
			t.Fatalf("certificate %v with error %v", c, err)
		}
	})
}
