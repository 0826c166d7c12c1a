package emulator

import (
	"fmt"
	"net/http"
	"strings"
)

// userProperties are the user properties the emulator knows, for $select;
// the first eleven are Graph's default set.
var userProperties = []string{
	"businessPhones", "displayName", "givenName", "jobTitle", "mail", "mobilePhone",
	"officeLocation", "preferredLanguage", "surname", "userPrincipalName", "id",
	"accountEnabled", "userType", "onPremisesExtensionAttributes",
}

// userResource is the user resource as Graph returns it.
func userResource(u User) map[string]any {
	phones := u.BusinessPhones
	if phones == nil {
		phones = []string{}
	}
	attributes := map[string]any{}
	for i := 1; i <= 15; i++ {
		name := fmt.Sprintf("extensionAttribute%d", i)
		attributes[name] = nilIfEmpty(u.ExtensionAttributes[name])
	}
	return map[string]any{
		"businessPhones": phones, "displayName": nilIfEmpty(u.DisplayName), "givenName": nil, "jobTitle": nil,
		"mail": nilIfEmpty(u.Mail), "mobilePhone": nilIfEmpty(u.MobilePhone), "officeLocation": nil, "preferredLanguage": nil, "surname": nil,
		"userPrincipalName": u.UserPrincipalName, "id": u.ID, "accountEnabled": true, "userType": "Member",
		"onPremisesExtensionAttributes": attributes,
	}
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// getUser serves GET /users/{id or upn}, honouring $select (Graph's
// default properties otherwise). It needs User.Read.All, User.ReadBasic.All
// or Directory.Read.All and is not throttled with presence.
func (e *Emulator) getUser(w http.ResponseWriter, r *http.Request) {
	c, err := e.authorized(r, userRead, false)
	if err != nil {
		writeError(w, r, err)
		return
	}
	selected, err := selectFields(r.URL.Query().Get("$select"), "user", userProperties)
	if err != nil {
		writeError(w, r, err)
		return
	}
	id := r.PathValue("id")
	var user User
	missing := notFound("Request_ResourceNotFound", "Resource '"+id+"' does not exist or one of its queried reference-property objects are not present.")
	err = e.withUser(c, id, userRead, missing, func(u *userState) *apiError {
		user = u.user
		return nil
	})
	if err != nil {
		writeError(w, r, err)
		return
	}
	context := metadata(r, "users/$entity")
	if selected == nil {
		selected = userProperties[:11]
	} else {
		context = metadata(r, "users("+strings.Join(selected, ",")+")/$entity")
	}
	out := project(userResource(user), selected)
	out["@odata.context"] = context
	writeJSON(w, http.StatusOK, out)
}
