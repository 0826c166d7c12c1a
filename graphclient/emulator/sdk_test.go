//go:build msgraphsdk

// This test drives the emulator with the official Microsoft Graph SDK for
// Go. The SDK takes minutes to compile from a cold cache, so it runs only
// with the msgraphsdk build tag:
//
//	go test -tags msgraphsdk -run TestOfficialSDK ./graphclient/emulator/

package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microsoft/kiota-abstractions-go/authentication"
	"github.com/microsoft/kiota-abstractions-go/serialization"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	"github.com/microsoftgraph/msgraph-sdk-go/communications"
	"github.com/microsoftgraph/msgraph-sdk-go/models"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
)

// clientCredentials is a kiota AccessTokenProvider that gets its token
// from the emulator's token endpoint with the client-credentials grant, as
// azidentity's ClientSecretCredential would from Entra, and caches it.
type clientCredentials struct {
	tokenURL, clientID, secret string

	mu      sync.Mutex
	token   string
	expires time.Time
	fetched int
}

func (c *clientCredentials) GetAuthorizationToken(ctx context.Context, _ *url.URL, _ map[string]any) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && time.Now().Before(c.expires) {
		return c.token, nil
	}
	form := url.Values{"client_id": {c.clientID}, "client_secret": {c.secret}, "grant_type": {"client_credentials"}, "scope": {"https://graph.microsoft.com/.default"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.tokenURL, strings.NewReader(form.Encode()))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
		ExpiresIn   int    `json:"expires_in"`
		Error       string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token request: %d %s %v", resp.StatusCode, body.Error, err)
	}
	c.token, c.expires = body.AccessToken, time.Now().Add(time.Duration(body.ExpiresIn-60)*time.Second)
	c.fetched++
	return c.token, nil
}

func (c *clientCredentials) GetAllowedHostsValidator() *authentication.AllowedHostsValidator {
	v := authentication.NewAllowedHostsValidator(nil) // every host, http included
	return &v
}

func TestOfficialSDK(t *testing.T) {
	h := newHarness(t)
	creds := &clientCredentials{tokenURL: h.url + "/" + tenantID + "/oauth2/v2.0/token", clientID: appID, secret: appKey}
	adapter, err := msgraphsdk.NewGraphRequestAdapter(authentication.NewBaseBearerTokenAuthenticationProvider(creds))
	if err != nil {
		t.Fatal(err)
	}
	adapter.SetBaseUrl(h.url + "/v1.0")
	client := msgraphsdk.NewGraphServiceClient(adapter)
	ctx := context.Background()
	str := func(s string) *string { return &s }

	// Set, get, batch-get and clear presence.
	set := users.NewItemPresenceSetPresencePostRequestBody()
	set.SetSessionId(str(appID))
	set.SetAvailability(str("Busy"))
	set.SetActivity(str("InACall"))
	set.SetExpirationDuration(serialization.FromDuration(15 * time.Minute))
	if err := client.Users().ByUserId(alice).Presence().SetPresence().Post(ctx, set, nil); err != nil {
		t.Fatalf("setPresence: %v", err)
	}
	v, _ := h.em.Presence(alice)
	if len(v.Sessions) != 1 || !v.Sessions[0].ExpiresAt.Equal(t0.Add(15*time.Minute)) {
		t.Fatalf("the SDK's expirationDuration was not honoured: %+v", v.Sessions)
	}
	p, err := client.Users().ByUserId(alice).Presence().Get(ctx, nil)
	if err != nil || *p.GetAvailability() != "Busy" || *p.GetActivity() != "InACall" || p.GetSequenceNumber() == nil {
		t.Fatalf("get presence: %v", err)
	}
	if ooo := p.GetOutOfOfficeSettings(); ooo == nil || ooo.GetIsOutOfOffice() == nil || *ooo.GetIsOutOfOffice() {
		t.Fatalf("outOfOfficeSettings: %+v", ooo)
	}
	batch := communications.NewGetPresencesByUserIdPostRequestBody()
	batch.SetIds([]string{alice, bob})
	many, err := client.Communications().GetPresencesByUserId().PostAsGetPresencesByUserIdPostResponse(ctx, batch, nil)
	if err != nil || len(many.GetValue()) != 2 || *many.GetValue()[0].GetAvailability() != "Busy" || *many.GetValue()[1].GetAvailability() != "Offline" {
		t.Fatalf("getPresencesByUserId: %v", err)
	}
	all, err := client.Communications().Presences().Get(ctx, nil)
	if err != nil || len(all.GetValue()) != 3 {
		t.Fatalf("list presences: %v", err)
	}
	user, err := client.Users().ByUserId("alice@contoso.example").Get(ctx, &users.UserItemRequestBuilderGetRequestConfiguration{
		QueryParameters: &users.UserItemRequestBuilderGetQueryParameters{Select: []string{"id", "userPrincipalName", "mail"}},
	})
	if err != nil || *user.GetId() != alice {
		t.Fatalf("get user by UPN: %v", err)
	}
	clear := users.NewItemPresenceClearPresencePostRequestBody()
	clear.SetSessionId(str(appID))
	if err := client.Users().ByUserId(alice).Presence().ClearPresence().Post(ctx, clear, nil); err != nil {
		t.Fatalf("clearPresence: %v", err)
	}
	if got := h.presence(alice); got != "Offline/Offline" {
		t.Fatalf("after clearPresence: %s", got)
	}
	gzipped := 0
	for _, r := range h.em.Requests() {
		if strings.HasSuffix(r.Path, "/setPresence") && r.ContentEncoding == "gzip" && strings.Contains(r.Body, `"sessionId"`) {
			gzipped++
		}
	}
	if gzipped == 0 {
		t.Fatal("the SDK's gzip-compressed setPresence bodies were not seen")
	}
	if creds.fetched != 1 {
		t.Fatalf("%d token requests, want 1", creds.fetched)
	}

	// setStatusMessage in the docs' shape, read back through the SDK's
	// models (without the expiry: the app is not the user).
	content, text := models.NewItemBody(), models.TEXT_BODYTYPE
	content.SetContent(str("On a call"))
	content.SetContentType(&text)
	expiry := models.NewDateTimeTimeZone()
	expiry.SetDateTime(str("2026-11-23T03:00:00.0000000"))
	expiry.SetTimeZone(str("Pacific Standard Time"))
	status := models.NewPresenceStatusMessage()
	status.SetMessage(content)
	status.SetExpiryDateTime(expiry)
	setStatus := users.NewItemPresenceSetStatusMessagePostRequestBody()
	setStatus.SetStatusMessage(status)
	if err := client.Users().ByUserId(alice).Presence().SetStatusMessage().Post(ctx, setStatus, nil); err != nil {
		t.Fatalf("setStatusMessage: %v", err)
	}
	p, err = client.Users().ByUserId(alice).Presence().Get(ctx, nil)
	if err != nil || p.GetStatusMessage() == nil || *p.GetStatusMessage().GetMessage().GetContent() != "On a call" ||
		*p.GetStatusMessage().GetMessage().GetContentType() != models.TEXT_BODYTYPE || p.GetStatusMessage().GetExpiryDateTime() != nil {
		t.Fatalf("statusMessage read back: %v", err)
	}
	if v, _ := h.em.Presence(alice); v.StatusMessage == nil || !v.StatusMessage.ExpiresAt.Equal(t0.Add(time.Hour)) {
		t.Fatalf("the SDK's expiryDateTime was not honoured: %+v", v.StatusMessage)
	}
	// Any 2XX: the SDK takes a 204 from an action.
	if err := h.em.SetActionStatus(http.StatusNoContent); err != nil {
		t.Fatal(err)
	}
	if err := client.Users().ByUserId(alice).Presence().SetPresence().Post(ctx, set, nil); err != nil {
		t.Fatalf("setPresence answered 204: %v", err)
	}
	if err := client.Users().ByUserId(alice).Presence().ClearPresence().Post(ctx, clear, nil); err != nil {
		t.Fatalf("clearPresence answered 204: %v", err)
	}
	if err := h.em.SetActionStatus(http.StatusOK); err != nil {
		t.Fatal(err)
	}

	// Graph's errors arrive as ODataError with the status and code.
	var odata *odataerrors.ODataError
	err = client.Users().ByUserId(alice).Presence().ClearPresence().Post(ctx, clear, nil)
	if !errors.As(err, &odata) || odata.ResponseStatusCode != 404 {
		t.Fatalf("clear again: want ODataError 404, got %v", err)
	}
	set.SetActivity(str("InAMeeting"))
	err = client.Users().ByUserId(alice).Presence().SetPresence().Post(ctx, set, nil)
	if !errors.As(err, &odata) || odata.ResponseStatusCode != 400 || *odata.GetErrorEscaped().GetCode() != "InvalidArgument" {
		t.Fatalf("bad pair: want ODataError 400 InvalidArgument, got %v", err)
	}
	set.SetActivity(str("InACall"))
	set.SetExpirationDuration(serialization.FromDuration(5 * time.Hour))
	err = client.Users().ByUserId(alice).Presence().SetPresence().Post(ctx, set, nil)
	if !errors.As(err, &odata) || odata.ResponseStatusCode != 400 || *odata.GetErrorEscaped().GetMessage() != "The provided [ExpirationDuration] is out of range." {
		t.Fatalf("PT5H: want ODataError 400 out of range, got %v", err)
	}
	_, err = client.Users().ByUserId("00000000-0000-0000-0000-000000000001").Presence().Get(ctx, nil)
	if !errors.As(err, &odata) || odata.ResponseStatusCode != 404 {
		t.Fatalf("unknown user: want ODataError 404, got %v", err)
	}
	_, err = client.Me().Presence().Get(ctx, nil)
	if !errors.As(err, &odata) || odata.ResponseStatusCode != 403 {
		t.Fatalf("/me with an app token: want ODataError 403, got %v", err)
	}
	// The SDK's retry handler retries 503 with Retry-After three times;
	// a longer failure surfaces as ODataError 503.
	h.em.FailNext(4, 503)
	_, err = client.Users().ByUserId(alice).Presence().Get(ctx, nil)
	if !errors.As(err, &odata) || odata.ResponseStatusCode != 503 || *odata.GetErrorEscaped().GetCode() != "serviceNotAvailable" {
		t.Fatalf("503: want ODataError 503, got %v", err)
	}
	// A token without the role: 403.
	reader := &clientCredentials{tokenURL: creds.tokenURL, clientID: "reader", secret: "reader-secret"}
	readerAdapter, _ := msgraphsdk.NewGraphRequestAdapter(authentication.NewBaseBearerTokenAuthenticationProvider(reader))
	readerAdapter.SetBaseUrl(h.url + "/v1.0")
	set.SetExpirationDuration(serialization.FromDuration(15 * time.Minute))
	err = msgraphsdk.NewGraphServiceClient(readerAdapter).Users().ByUserId(alice).Presence().SetPresence().Post(ctx, set, nil)
	if !errors.As(err, &odata) || odata.ResponseStatusCode != 403 {
		t.Fatalf("reader sets presence: want ODataError 403, got %v", err)
	}
}
