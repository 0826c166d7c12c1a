package emulator

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"strings"
	"time"
)

// assertionType is the only client_assertion_type the identity platform
// takes.
const assertionType = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"

// assertionSkew is the clock skew allowed around an assertion's times.
const assertionSkew = 5 * time.Minute

// parseAppCertificate reads the PEM certificate registered for an app.
func parseAppCertificate(data string) (*x509.Certificate, error) {
	block, _ := pem.Decode([]byte(data))
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, errors.New("must be a PEM CERTIFICATE block")
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, err
	}
	if _, ok := cert.PublicKey.(*rsa.PublicKey); !ok {
		return nil, errors.New("must hold an RSA public key")
	}
	return cert, nil
}

// assertionIssuer returns the unverified iss claim of a client assertion,
// for requests that name the client only there.
func assertionIssuer(assertion string) string {
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return ""
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if payload, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
		_ = json.Unmarshal(payload, &c)
	}
	return c.Issuer
}

// assertionFailure is why the identity platform refuses an assertion.
type assertionFailure struct {
	aadsts      int
	description string
}

// checkAssertion verifies a client assertion as the identity platform
// does: an RS256 JWT whose x5t names the certificate registered for the
// app, signed by its key, for this tenant's token endpoint, issued by and
// about the app, and valid at now.
func checkAssertion(app App, tenant, kind, assertion string, now time.Time) *assertionFailure {
	invalid := func(aadsts int, description string) *assertionFailure {
		return &assertionFailure{aadsts: aadsts, description: description}
	}
	if kind != assertionType {
		return invalid(50027, "Invalid client_assertion_type; it must be '"+assertionType+"'.")
	}
	if app.Certificate == "" {
		return invalid(700027, "Client assertion failed signature validation: no certificate is registered for application '"+app.ClientID+"'.")
	}
	cert, err := parseAppCertificate(app.Certificate)
	if err != nil {
		return invalid(700027, "Client assertion failed signature validation: the registered certificate is unusable.")
	}
	parts := strings.Split(assertion, ".")
	if len(parts) != 3 {
		return invalid(50027, "Invalid JWT token. The token is not in JWS compact form.")
	}
	var header struct {
		Alg string `json:"alg"`
		X5t string `json:"x5t"`
	}
	var claims struct {
		Audience string `json:"aud"`
		Issuer   string `json:"iss"`
		Subject  string `json:"sub"`
		Expires  int64  `json:"exp"`
		NotBefor int64  `json:"nbf"`
	}
	rawHeader, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	rawClaims, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if errors.Join(err1, err2, err3) != nil || json.Unmarshal(rawHeader, &header) != nil || json.Unmarshal(rawClaims, &claims) != nil {
		return invalid(50027, "Invalid JWT token. The token is malformed.")
	}
	thumbprint := sha1.Sum(cert.Raw)
	if header.Alg != "RS256" || header.X5t != base64.RawURLEncoding.EncodeToString(thumbprint[:]) {
		return invalid(700027, "Client assertion failed signature validation: the certificate named by x5t is not registered for application '"+app.ClientID+"'.")
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if rsa.VerifyPKCS1v15(cert.PublicKey.(*rsa.PublicKey), crypto.SHA256, digest[:], sig) != nil {
		return invalid(700027, "Client assertion failed signature validation.")
	}
	switch {
	case !strings.HasSuffix(strings.ToLower(claims.Audience), "/"+tenant+"/oauth2/v2.0/token"):
		return invalid(50027, "Invalid JWT token. The audience must be this tenant's token endpoint.")
	case claims.Issuer != app.ClientID || claims.Subject != app.ClientID:
		return invalid(700021, "Client assertion application identifier doesn't match 'client_id' parameter.")
	case claims.Expires == 0 || now.After(time.Unix(claims.Expires, 0).Add(assertionSkew)) ||
		(claims.NotBefor != 0 && now.Before(time.Unix(claims.NotBefor, 0).Add(-assertionSkew))):
		return invalid(700024, "Client assertion is not within its valid time range.")
	}
	return nil
}
