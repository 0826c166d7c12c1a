//go:build msgraphsdk

// This test drives the emulator with the official Microsoft Graph SDK for
// Go. The SDK takes minutes to compile, so it runs only with
// `go test -tags msgraphsdk ./graphclient/emulator/` (make sdk-test).

package emulator

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"github.com/microsoft/kiota-abstractions-go/authentication"
	"github.com/microsoft/kiota-abstractions-go/serialization"
	msgraphsdk "github.com/microsoftgraph/msgraph-sdk-go"
	"github.com/microsoftgraph/msgraph-sdk-go/communications"
	"github.com/microsoftgraph/msgraph-sdk-go/models/odataerrors"
	"github.com/microsoftgraph/msgraph-sdk-go/users"
)

// staticToken hands the SDK a token fetched from the emulator.
type staticToken string

func (s staticToken) GetAuthorizationToken(context.Context, *url.URL, map[string]any) (string, error) {
	return string(s), nil
}

func (s staticToken) GetAllowedHostsValidator() *authentication.AllowedHostsValidator {
	v := authentication.NewAllowedHostsValidator(nil)
	return &v
}

func TestOfficialSDK(t *testing.T) {
	h := newHarness(t)
	adapter, err := msgraphsdk.NewGraphRequestAdapter(authentication.NewBaseBearerTokenAuthenticationProvider(staticToken(h.token)))
	if err != nil {
		t.Fatal(err)
	}
	adapter.SetBaseUrl(h.url + "/v1.0")
	client := msgraphsdk.NewGraphServiceClient(adapter)
	ctx := context.Background()
	str := func(s string) *string { return &s }

	set := users.NewItemPresenceSetPresencePostRequestBody()
	set.SetSessionId(str(appID))
	set.SetAvailability(str("Busy"))
	set.SetActivity(str("InACall"))
	set.SetExpirationDuration(serialization.FromDuration(15 * time.Minute))
	if err := client.Users().ByUserId(alice).Presence().SetPresence().Post(ctx, set, nil); err != nil {
		t.Fatalf("setPresence: %v", err)
	}
	p, err := client.Users().ByUserId(alice).Presence().Get(ctx, nil)
	if err != nil || *p.GetAvailability() != "Busy" || *p.GetActivity() != "InACall" {
		t.Fatalf("get presence: %v", err)
	}
	batch := communications.NewGetPresencesByUserIdPostRequestBody()
	batch.SetIds([]string{alice, bob})
	many, err := client.Communications().GetPresencesByUserId().PostAsGetPresencesByUserIdPostResponse(ctx, batch, nil)
	if err != nil || len(many.GetValue()) != 2 {
		t.Fatalf("getPresencesByUserId: %v", err)
	}
	clear := users.NewItemPresenceClearPresencePostRequestBody()
	clear.SetSessionId(str(appID))
	if err := client.Users().ByUserId(alice).Presence().ClearPresence().Post(ctx, clear, nil); err != nil {
		t.Fatalf("clearPresence: %v", err)
	}
	// Graph's errors arrive as ODataError with the status.
	err = client.Users().ByUserId(alice).Presence().ClearPresence().Post(ctx, clear, nil)
	var odata *odataerrors.ODataError
	if !errors.As(err, &odata) || odata.ResponseStatusCode != 404 {
		t.Fatalf("clear again: want ODataError 404, got %v", err)
	}
	set.SetActivity(str("InAMeeting"))
	err = client.Users().ByUserId(alice).Presence().SetPresence().Post(ctx, set, nil)
	if !errors.As(err, &odata) || odata.ResponseStatusCode != 400 || *odata.GetErrorEscaped().GetCode() != "InvalidArgument" {
		t.Fatalf("bad pair: want ODataError 400 InvalidArgument, got %v", err)
	}
}
