package emulator

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// tokenLifetime is how long an access token lives, as Entra's
// client-credentials tokens do.
const tokenLifetime = 3599 * time.Second

// graphResourceID is Microsoft Graph's application id, which a scope may
// name instead of its URL.
const graphResourceID = "00000003-0000-0000-c000-000000000000"

// claims are the access token's claims the emulator sets and checks. The
// token is JWT-shaped (header.payload.signature) and signed with HMAC-SHA256
// under a key only this emulator knows, so it validates its own tokens
// without keeping them, and Reset invalidates them all.
type claims struct {
	Audience  string   `json:"aud"`
	Issuer    string   `json:"iss"`
	IssuedAt  int64    `json:"iat"`
	NotBefore int64    `json:"nbf"`
	Expires   int64    `json:"exp"`
	AppID     string   `json:"appid"`
	IDType    string   `json:"idtyp"` // "app" or "user"
	Roles     []string `json:"roles,omitempty"`
	Scopes    string   `json:"scp,omitempty"`
	ObjectID  string   `json:"oid,omitempty"`
	UPN       string   `json:"upn,omitempty"`
	TenantID  string   `json:"tid"`
	TokenID   string   `json:"uti"`
	Version   string   `json:"ver"`
}

// delegated tells whether the token acts for a signed-in user.
func (c *claims) delegated() bool { return c.IDType == "user" }

// token serves POST /{tenant}/oauth2/v2.0/token for the client-credentials
// grant, with the client id and secret in the form or in an HTTP Basic
// header, answering the identity platform's errors.
func (e *Emulator) token(w http.ResponseWriter, r *http.Request) {
	tenant := strings.ToLower(r.PathValue("tenant"))
	_ = r.ParseForm() // a body that is not a form leaves PostForm empty
	form := r.PostForm
	clientID, secrets := form.Get("client_id"), []string{form.Get("client_secret")}
	if id, s, ok := r.BasicAuth(); ok {
		// RFC 6749 section 2.3.1 form-encodes both before Basic encoding;
		// lax clients do not, so the raw secret is tried too.
		clientID, secrets = formDecode(id), []string{s}
		if decoded := formDecode(s); decoded != s {
			secrets = append(secrets, decoded)
		}
	}
	secret := secrets[0]
	assertion := form.Get("client_assertion")
	if clientID == "" && assertion != "" {
		clientID = assertionIssuer(assertion)
	}
	scope := form.Get("scope")
	fail := func(status int, code string, aadsts int, description string) {
		writeIdentityError(w, r, status, code, aadsts, description)
	}
	switch grant := form.Get("grant_type"); {
	case grant == "":
		fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	case grant != "client_credentials":
		fail(http.StatusBadRequest, "unsupported_grant_type", 70003, "The app requested an unsupported grant type '"+grant+"'.")
		return
	case clientID == "":
		fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
		return
	case scope == "":
		fail(http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
		return
	case !strings.HasSuffix(scope, "/.default") || strings.ContainsAny(scope, " \t"):
		fail(http.StatusBadRequest, "invalid_scope", 1002012, "The provided value for scope "+scope+" is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).")
		return
	}
	e.mu.Lock()
	known := e.tenants[tenant]
	app, appKnown := e.apps[tenant+"/"+clientID]
	key := e.signKey
	e.mu.Unlock()
	switch {
	case !known:
		fail(http.StatusBadRequest, "invalid_request", 90002, "Tenant '"+tenant+"' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.")
		return
	case !appKnown:
		fail(http.StatusBadRequest, "unauthorized_client", 700016, "Application with identifier '"+clientID+"' was not found in the directory '"+tenant+"'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.")
		return
	case assertion != "" && secret != "":
		fail(http.StatusBadRequest, "invalid_request", 50027, "Send either client_secret or client_assertion, not both.")
		return
	case assertion != "":
		if f := checkAssertion(app, tenant, form.Get("client_assertion_type"), assertion, meta(r).now); f != nil {
			fail(http.StatusUnauthorized, "invalid_client", f.aadsts, f.description)
			return
		}
	case secret == "":
		fail(http.StatusUnauthorized, "invalid_client", 7000216, "'client_assertion', 'client_secret' or 'request' is required for the 'client_credentials' grant type.")
		return
	case app.ClientSecret == "" || !slices.ContainsFunc(secrets, func(s string) bool { return subtle.ConstantTimeCompare([]byte(s), []byte(app.ClientSecret)) == 1 }):
		fail(http.StatusUnauthorized, "invalid_client", 7000215, "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '"+clientID+"'.")
		return
	}
	now := meta(r).now
	c := claims{
		Audience: strings.TrimSuffix(scope, "/.default"), AppID: clientID, IDType: "app",
		Roles: slices.Clone(app.Roles), TenantID: tenant,
	}
	tok := signToken(key, c, now)
	w.Header().Set("Cache-Control", "no-store, no-cache")
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(tokenLifetime.Seconds()), "ext_expires_in": int(tokenLifetime.Seconds()), "access_token": tok,
	})
}

// formDecode undoes application/x-www-form-urlencoded encoding, keeping s
// as it is when it is not validly encoded.
func formDecode(s string) string {
	if d, err := url.QueryUnescape(s); err == nil {
		return d
	}
	return s
}

// signToken fills c's times, issuer and id and returns it as a signed
// JWT-shaped token.
func signToken(key []byte, c claims, now time.Time) string {
	c.Issuer = "https://sts.windows.net/" + c.TenantID + "/"
	c.IssuedAt, c.NotBefore = now.Unix(), now.Unix()
	c.Expires = now.Add(tokenLifetime).Unix()
	c.TokenID, c.Version = newID(), "1.0"
	header, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "HS256", "kid": "graph-emulator"})
	payload, _ := json.Marshal(c)
	signing := b64(header) + "." + b64(payload)
	return signing + "." + b64(sign(key, signing))
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func sign(key []byte, s string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(s))
	return mac.Sum(nil)
}

// DelegatedToken returns an access token that acts for user (object id or
// UPN) with the given delegated scopes, such as Presence.Read, as if the
// user had signed in to the tenant's first application. The emulator has
// no sign-in flow; tests use this to reach /me/presence.
func (e *Emulator) DelegatedToken(user string, scopes ...string) (string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	u := e.lookup(user)
	if u == nil {
		return "", errNoUser(user)
	}
	appID := ""
	for _, t := range e.cfg.Tenants {
		if strings.EqualFold(t.ID, u.tenant) && len(t.Apps) > 0 {
			appID = t.Apps[0].ClientID
		}
	}
	if appID == "" {
		return "", errors.New("the user's tenant has no application")
	}
	c := claims{
		Audience: "https://graph.microsoft.com", AppID: appID, IDType: "user", Scopes: strings.Join(scopes, " "),
		ObjectID: u.user.ID, UPN: u.user.UserPrincipalName, TenantID: u.tenant,
	}
	return signToken(e.signKey, c, e.clock.Now()), nil
}

// authenticate checks the request's bearer token: present, well formed,
// signed by this emulator, meant for Graph and not expired. Failures are
// Graph's 401 InvalidAuthenticationToken.
func (e *Emulator) authenticate(r *http.Request) (*claims, *apiError) {
	unauthorized := func(message string) *apiError {
		return &apiError{status: http.StatusUnauthorized, code: "InvalidAuthenticationToken", message: message}
	}
	scheme, tok, _ := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	tok = strings.TrimSpace(tok)
	if !strings.EqualFold(scheme, "Bearer") || tok == "" {
		return nil, unauthorized("Access token is empty.")
	}
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return nil, unauthorized("IDX14100: JWT is not well formed, there are no dots (.). The token needs to be in JWS or JWE Compact Serialization Format.")
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	var c claims
	if err != nil || json.Unmarshal(payload, &c) != nil {
		return nil, unauthorized("IDX14102: Unable to decode the payload of the token as Base64Url encoded string.")
	}
	e.mu.Lock()
	key := e.signKey
	e.mu.Unlock()
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil || !hmac.Equal(sig, sign(key, parts[0]+"."+parts[1])) {
		return nil, unauthorized("Access token validation failure. Invalid signature.")
	}
	if !graphAudience(c.Audience, r.Host) {
		return nil, unauthorized("Access token validation failure. Invalid audience.")
	}
	now := meta(r).now
	switch {
	case !now.Before(time.Unix(c.Expires, 0)):
		return nil, unauthorized("Lifetime validation failed, the token is expired.")
	case now.Before(time.Unix(c.NotBefore, 0)):
		return nil, unauthorized("Lifetime validation failed, the token is not yet valid.")
	}
	return &c, nil
}

// graphAudience tells whether a token's audience is Microsoft Graph: its
// application id, its URL in any national cloud, or the emulator's own
// address (clients pointed at the emulator ask for a token for it).
func graphAudience(aud, host string) bool {
	aud = strings.TrimSuffix(strings.ToLower(aud), "/")
	if aud == graphResourceID || (strings.HasPrefix(aud, "https://") && strings.Contains(aud, "graph")) {
		return true
	}
	u, err := url.Parse(aud)
	return err == nil && host != "" && strings.EqualFold(u.Host, host)
}

// permission lists what grants an operation: application roles, delegated
// scopes that reach every user, and delegated scopes that reach only the
// signed-in user.
type permission struct {
	app, delegated, delegatedSelf []string
}

// The permissions of the emulated operations, as Graph documents them.
var (
	presenceRead  = permission{app: []string{"Presence.Read.All", "Presence.ReadWrite.All"}, delegated: []string{"Presence.Read.All", "Presence.ReadWrite.All"}, delegatedSelf: []string{"Presence.Read", "Presence.ReadWrite"}}
	presenceWrite = permission{app: []string{"Presence.ReadWrite.All"}, delegated: []string{"Presence.ReadWrite.All"}, delegatedSelf: []string{"Presence.ReadWrite"}}
	userRead      = permission{
		app:           []string{"User.Read.All", "User.ReadBasic.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All"},
		delegated:     []string{"User.ReadBasic.All", "User.Read.All", "User.ReadWrite.All", "Directory.Read.All", "Directory.ReadWrite.All", "Directory.AccessAsUser.All"},
		delegatedSelf: []string{"User.Read", "User.ReadWrite"},
	}
	calendarRead = permission{
		app:           []string{"Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite"},
		delegated:     []string{"Calendars.Read.Shared", "Calendars.ReadWrite.Shared"},
		delegatedSelf: []string{"Calendars.ReadBasic", "Calendars.Read", "Calendars.ReadWrite"},
	}
)

// errForbidden is Graph's answer to a token without the permission: 403
// with an empty message.
var errForbidden = &apiError{status: http.StatusForbidden, code: "Forbidden", message: ""}

// allows tells whether token c may do an operation needing p on the user
// with object id target ("" when the operation names no single user).
func (c *claims) allows(p permission, target string) bool {
	if !c.delegated() {
		return slices.ContainsFunc(c.Roles, func(r string) bool { return slices.Contains(p.app, r) })
	}
	scopes := strings.Fields(c.Scopes)
	if slices.ContainsFunc(scopes, func(s string) bool { return slices.Contains(p.delegated, s) }) {
		return true
	}
	return target != "" && strings.EqualFold(target, c.ObjectID) &&
		slices.ContainsFunc(scopes, func(s string) bool { return slices.Contains(p.delegatedSelf, s) })
}

// mayAtAll tells whether c could do an operation needing p on some user; a
// token failing it is refused before the user is looked up.
func (c *claims) mayAtAll(p permission) bool {
	return c.allows(p, "") || (c.delegated() && c.allows(p, c.ObjectID))
}
