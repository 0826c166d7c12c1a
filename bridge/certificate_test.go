package bridge_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCertificateCredentialEndToEnd: the tenant's application proves
// itself with a certificate (client_certificate_file) instead of a secret,
// and presence still reaches the emulator.
func TestCertificateCredentialEndToEnd(t *testing.T) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "presence-bridge"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	bundle := append(append([]byte{}, cert...), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
	file := filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(file, bundle, 0o600); err != nil {
		t.Fatal(err)
	}

	cfg := testConfig(t)
	cfg = strings.Replace(cfg, "client_secret: demo-secret\n  timeout", fmt.Sprintf("client_certificate_file: %q\n  timeout", file), 1)
	cfg = strings.Replace(cfg, "            client_secret: demo-secret\n", fmt.Sprintf("            certificate: %q\n", cert), 1)
	if strings.Contains(cfg, "demo-secret") {
		t.Fatal("the configuration still names a secret")
	}
	b := startBridge(t, cfg)
	postEvent(t, b, callEvent("cert-1", "alice@contoso.example", "c1", "active", time.Now()))
	waitPresence(t, b, aliceID, "Busy/InACall", 2*time.Second)
	for _, r := range b.Emulator().Requests() {
		if strings.HasSuffix(r.Path, "/token") && !strings.Contains(r.Body, "client_assertion_type=urn") {
			t.Fatalf("token request without an assertion: %q", r.Body)
		}
	}
}
