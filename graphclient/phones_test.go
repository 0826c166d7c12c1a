package graphclient_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/presence-bridge/presence-bridge/graphclient"
	"github.com/presence-bridge/presence-bridge/graphclient/emulator"
)

func TestFindUsers(t *testing.T) {
	ctx := context.Background()
	_, c := startCalendarEmulator(t, emulator.NewFakeClock(time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)),
		emulator.User{ID: aliceID, UserPrincipalName: "alice@contoso.example", BusinessPhones: []string{"+15551230001"}, ExtensionAttributes: map[string]string{"extensionAttribute3": "1001"}},
		emulator.User{ID: bobID, UserPrincipalName: "bob@contoso.example", MobilePhone: "+15551230001"},
	)
	cases := []struct {
		property, value string
		want            []string
	}{
		{graphclient.BusinessPhones, "+15551230001", []string{aliceID}},
		{graphclient.MobilePhone, "+15551230001", []string{bobID}},
		{"extensionAttribute3", "1001", []string{aliceID}},
		{graphclient.BusinessPhones, "+15550000000", nil},
		{graphclient.MobilePhone, "it's", nil},
	}
	for _, tc := range cases {
		users, err := c.FindUsers(ctx, tc.property, tc.value)
		if err != nil || len(users) != len(tc.want) || (len(users) == 1 && users[0].ID != tc.want[0]) {
			t.Fatalf("%s %s: %+v %v", tc.property, tc.value, users, err)
		}
	}
	for _, bad := range [][2]string{{"faxNumber", "1"}, {graphclient.MobilePhone, ""}, {graphclient.MobilePhone, "a\nb"}} {
		if _, err := c.FindUsers(ctx, bad[0], bad[1]); !errors.Is(err, graphclient.ErrInvalidArgument) {
			t.Fatalf("%q: %v", bad, err)
		}
	}
}
