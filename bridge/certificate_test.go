package bridge_test

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/config"
	"github.com/presence-bridge/presence-bridge/internal/testpoll"
)

// TestCertificateCredentialEndToEnd: the tenant's application proves
// itself with a certificate (client_certificate_file) instead of a secret,
// and presence still reaches the emulator.
func TestCertificateCredentialEndToEnd(t *testing.T) {
	cert, file := certificateFile(t)
	cfg := certificateConfig(t, cert, file)
	b := startBridge(t, cfg)
	postEvent(t, b, callEvent("cert-1", "alice@contoso.example", "c1", "active", time.Now()))
	waitPresence(t, b, aliceID, "Busy/InACall", 2*time.Second)
	for _, r := range b.Emulator().Requests() {
		if strings.HasSuffix(r.Path, "/token") && !strings.Contains(r.Body, "client_assertion_type=urn") {
			t.Fatalf("token request without an assertion: %q", r.Body)
		}
	}
}

// TestUnregisteredCertificateIsLoggedNotShown: a certificate the app does
// not have gets the identity platform's refusal in the logs, and the key
// never appears there.
func TestUnregisteredCertificateIsLoggedNotShown(t *testing.T) {
	registered, _ := certificateFile(t)
	_, file := certificateFile(t)
	cfg, err := config.Parse([]byte(certificateConfig(t, registered, file)), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b, logs := startBridgeWithLogs(t, cfg)
	postEvent(t, b, callEvent("cert-2", "alice@contoso.example", "c1", "active", time.Now()))
	testpoll.Until(t, "the refused assertion logged with its AADSTS code", func() bool { return strings.Contains(logs.String(), "AADSTS700027") })
	bundle, _ := os.ReadFile(file)
	block, _ := pem.Decode(bundle[strings.Index(string(bundle), "-----BEGIN RSA"):])
	keyText := base64.StdEncoding.EncodeToString(block.Bytes)
	for _, fragment := range []string{"PRIVATE KEY", keyText[130:180] /* inside one PEM line */, "client_assertion=ey"} {
		if strings.Contains(logs.String(), fragment) {
			t.Fatalf("the logs show %q", fragment)
		}
	}
}

// certificateFile makes a certificate and key, writes both to a PEM file
// and returns the certificate alone and the file's path.
func certificateFile(t *testing.T) (cert []byte, file string) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "presence-bridge"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	bundle := append(append([]byte{}, cert...), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
	file = filepath.Join(t.TempDir(), "app.pem")
	if err := os.WriteFile(file, bundle, 0o600); err != nil {
		t.Fatal(err)
	}
	return cert, file
}

// certificateConfig is the test configuration with the app registered in
// the emulator by certificate, and the bridge holding the key in file.
func certificateConfig(t *testing.T, cert []byte, file string) string {
	cfg := testConfig(t)
	cfg = strings.Replace(cfg, "client_secret: demo-secret\n  timeout", fmt.Sprintf("client_certificate_file: %q\n  timeout", file), 1)
	cfg = strings.Replace(cfg, "            client_secret: demo-secret\n", fmt.Sprintf("            certificate: %q\n", cert), 1)
	if strings.Contains(cfg, "demo-secret") {
		t.Fatal("the configuration still names a secret")
	}
	return cfg
}
