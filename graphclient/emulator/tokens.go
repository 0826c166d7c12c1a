package emulator

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"slices"
	"strings"
	"time"
)

// tokenLifetime is how long an access token lives, as Entra's do.
const tokenLifetime = 3599 * time.Second

type tokenInfo struct {
	tenant  string
	appID   string
	roles   []string
	expires time.Time
}

// token serves POST /{tenant}/oauth2/v2.0/token for client credentials,
// with the client id and secret in the form or in a Basic header.
func (e *Emulator) token(w http.ResponseWriter, r *http.Request) {
	tenant := strings.ToLower(r.PathValue("tenant"))
	if err := r.ParseForm(); err != nil {
		identityError(w, http.StatusBadRequest, "invalid_request", "AADSTS900144: The request body must contain the following parameter: 'grant_type'.", 900144, e.clock.Now())
		return
	}
	clientID, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if id, s, ok := r.BasicAuth(); ok {
		clientID, secret = id, s
	}
	now := e.clock.Now()
	switch {
	case r.PostForm.Get("grant_type") != "client_credentials":
		identityError(w, http.StatusBadRequest, "unsupported_grant_type", "AADSTS70003: The app requested an unsupported grant type.", 70003, now)
		return
	case !strings.HasSuffix(r.PostForm.Get("scope"), "/.default"):
		identityError(w, http.StatusBadRequest, "invalid_scope", "AADSTS1002012: The provided value for scope is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier.", 1002012, now)
		return
	}
	e.mu.Lock()
	known := e.tenants[tenant]
	app, appKnown := e.apps[tenant+"/"+clientID]
	e.mu.Unlock()
	switch {
	case !known:
		identityError(w, http.StatusBadRequest, "invalid_tenant", "AADSTS90002: Tenant '"+tenant+"' not found.", 90002, now)
		return
	case !appKnown:
		identityError(w, http.StatusBadRequest, "unauthorized_client", "AADSTS700016: Application with identifier '"+clientID+"' was not found in the directory.", 700016, now)
		return
	case subtle.ConstantTimeCompare([]byte(secret), []byte(app.ClientSecret)) != 1:
		identityError(w, http.StatusUnauthorized, "invalid_client", "AADSTS7000215: Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.", 7000215, now)
		return
	}
	var raw [32]byte
	_, _ = rand.Read(raw[:])
	token := "emu." + base64.RawURLEncoding.EncodeToString(raw[:])
	e.mu.Lock()
	e.tokens[token] = tokenInfo{tenant: tenant, appID: clientID, roles: slices.Clone(app.Roles), expires: now.Add(tokenLifetime)}
	e.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{
		"token_type": "Bearer", "expires_in": int(tokenLifetime.Seconds()), "ext_expires_in": int(tokenLifetime.Seconds()), "access_token": token,
	})
}

func identityError(w http.ResponseWriter, status int, code, description string, aadsts int, now time.Time) {
	writeJSON(w, status, map[string]any{
		"error": code, "error_description": description, "error_codes": []int{aadsts},
		"timestamp": now.UTC().Format("2006-01-02 15:04:05Z"), "trace_id": newID(), "correlation_id": newID(),
	})
}

// authorize checks the bearer token and that it carries one of roles. It
// answers 401 or 403 itself and returns false when the request may not go
// on.
func (e *Emulator) authorize(w http.ResponseWriter, r *http.Request, roles ...string) (tokenInfo, bool) {
	now := e.clock.Now()
	scheme, token, _ := strings.Cut(r.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || token == "" {
		writeGraphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Access token is empty.", now)
		return tokenInfo{}, false
	}
	e.mu.Lock()
	info, ok := e.tokens[token]
	e.mu.Unlock()
	switch {
	case !ok:
		writeGraphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "IDX14100: JWT is not well formed.", now)
		return tokenInfo{}, false
	case !now.Before(info.expires):
		writeGraphError(w, r, http.StatusUnauthorized, "InvalidAuthenticationToken", "Lifetime validation failed, the token is expired.", now)
		return tokenInfo{}, false
	}
	for _, role := range roles {
		if slices.Contains(info.roles, role) {
			return info, true
		}
	}
	writeGraphError(w, r, http.StatusForbidden, "Forbidden", "", now)
	return tokenInfo{}, false
}
