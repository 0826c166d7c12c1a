package graphclient

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"time"
)

// AssertionType is the client_assertion_type of a certificate credential.
const AssertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionLifetime is how long a client assertion is valid.
const assertionLifetime = 10 * time.Minute

// CheckCertificate reports whether bundle is a usable certificate
// credential: a PEM certificate with its RSA private key.
func CheckCertificate(bundle []byte) error {
	_, err := parseCertificate(bundle)
	return err
}

// certificate is an application's certificate credential: the key that
// signs client assertions and the thumbprint that names the certificate.
type certificate struct {
	key        *rsa.PrivateKey
	thumbprint string // base64url SHA-1 of the DER certificate, the JWT's x5t
}

// parseCertificate reads a PEM bundle holding the certificate and its RSA
// private key (PKCS #1 or PKCS #8), as Entra's certificate credentials
// need. Errors never show key material.
func parseCertificate(bundle []byte) (*certificate, error) {
	var cert *x509.Certificate
	var key *rsa.PrivateKey
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch block.Type {
		case "CERTIFICATE":
			if cert != nil {
				continue // the leaf comes first; the rest is its chain
			}
			c, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("client certificate: %w", err)
			}
			cert = c
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("client certificate: the RSA private key can not be parsed")
			}
			key = k
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
			if err != nil {
				return nil, errors.New("client certificate: the private key can not be parsed")
			}
			rsaKey, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, errors.New("client certificate: the private key is not an RSA key (Entra signs client assertions with RS256)")
			}
			key = rsaKey
		}
	}
	switch {
	case cert == nil:
		return nil, errors.New("client certificate: no CERTIFICATE block in the PEM data")
	case key == nil:
		return nil, errors.New("client certificate: no private key block in the PEM data")
	case !key.PublicKey.Equal(cert.PublicKey):
		return nil, errors.New("client certificate: the private key does not belong to the certificate")
	}
	sum := sha1.Sum(cert.Raw) // x5t is SHA-1 by definition (RFC 7515)
	return &certificate{key: key, thumbprint: base64.RawURLEncoding.EncodeToString(sum[:])}, nil
}

// assertion returns a signed client assertion for clientID at the token
// endpoint audience, valid from now for assertionLifetime.
func (c *certificate) assertion(clientID, audience string, now time.Time) (string, error) {
	id := make([]byte, 16)
	if _, err := rand.Read(id); err != nil {
		return "", fmt.Errorf("client assertion id: %w", err)
	}
	header, err := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "x5t": c.thumbprint})
	if err != nil {
		return "", err
	}
	claims, err := json.Marshal(map[string]any{
		"aud": audience, "iss": clientID, "sub": clientID, "jti": hex.EncodeToString(id),
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(assertionLifetime).Unix(),
	})
	if err != nil {
		return "", err
	}
	signing := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, c.key, crypto.SHA256, digest[:])
	if err != nil {
		return "", fmt.Errorf("sign client assertion: %w", err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
