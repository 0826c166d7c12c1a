package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

// Change notification subscriptions on users' calendar events, as Graph
// keeps them:
//
//   - POST /subscriptions validates the request, then sends the validation
//     request to notificationUrl (and to lifecycleNotificationUrl when
//     given): a POST with ?validationToken=..., which must be answered
//     with 200 and the token as text/plain within 10 seconds; otherwise
//     the subscription is not created (400).
//   - A subscription lives until its expirationDateTime (at most 10,080
//     minutes ahead for Outlook events); PATCH moves it, DELETE ends it.
//     Past its expiration it is gone, with no notification.
//   - While it lives, creating, changing or deleting one of the user's
//     events (SetEvent, DeleteEvent, the admin API) POSTs a change
//     notification to notificationUrl, asynchronously.
//   - Lifecycle notifications (reauthorizationRequired,
//     subscriptionRemoved, missed) go to lifecycleNotificationUrl only
//     when SendLifecycle (or the admin API) asks; subscriptionRemoved also
//     removes the subscription.
//
// Unlike Graph, plain http notification URLs are accepted, so that tests
// can listen on loopback.

// Subscription limits.
const (
	// MaxEventSubscriptionLifetime is the longest expirationDateTime Graph
	// accepts ahead of now for Outlook event subscriptions.
	MaxEventSubscriptionLifetime = 10080 * time.Minute
	// validationTimeout is how long a notification endpoint has to answer
	// the validation request.
	validationTimeout = 10 * time.Second
	// maxClientState is the longest clientState Graph accepts.
	maxClientState = 128
)

// LifecycleEvents are the lifecycle notification kinds.
var LifecycleEvents = []string{"reauthorizationRequired", "subscriptionRemoved", "missed"}

// Subscription is a change notification subscription as the admin API and
// Subscriptions show it.
type Subscription struct {
	ID                        string    `json:"id"`
	Resource                  string    `json:"resource"`
	ChangeType                string    `json:"changeType"`
	ClientState               string    `json:"clientState,omitempty"`
	NotificationURL           string    `json:"notificationUrl"`
	LifecycleNotificationURL  string    `json:"lifecycleNotificationUrl,omitempty"`
	ExpirationDateTime        time.Time `json:"expirationDateTime"`
	ApplicationID             string    `json:"applicationId"`
	Tenant                    string    `json:"tenant"`
	User                      string    `json:"user"` // the object id whose events it watches
	Delivered, FailedDelivery int       `json:"-"`
}

// subscriptions is the emulator's subscription store; guarded by
// Emulator.mu.
type subscriptions struct {
	byID map[string]*Subscription
	// failNext requests to /subscriptions answer failStatus.
	failNext, failStatus int
}

// prune drops the subscriptions expired at now.
func (s *subscriptions) prune(now time.Time) {
	for id, sub := range s.byID {
		if !now.Before(sub.ExpirationDateTime) {
			delete(s.byID, id)
		}
	}
}

// subscriptionResource is the subscription as Graph returns it.
func subscriptionResource(r *http.Request, s Subscription) map[string]any {
	out := map[string]any{
		"@odata.context": metadata(r, "subscriptions/$entity"),
		"id":             s.ID, "resource": s.Resource, "applicationId": s.ApplicationID, "changeType": s.ChangeType,
		"clientState": nilIfEmpty(s.ClientState), "notificationUrl": s.NotificationURL,
		"lifecycleNotificationUrl": nilIfEmpty(s.LifecycleNotificationURL),
		"expirationDateTime":       s.ExpirationDateTime.UTC().Format("2006-01-02T15:04:05.0000000Z"),
		"creatorId":                s.ApplicationID, "latestSupportedTlsVersion": "v1_2",
		"includeResourceData": false, "notificationContentType": nil, "encryptionCertificate": nil,
	}
	return out
}

// subscriptionRequest is the body of POST and PATCH /subscriptions.
type subscriptionRequest struct {
	ChangeType               *string `json:"changeType"`
	NotificationURL          *string `json:"notificationUrl"`
	LifecycleNotificationURL *string `json:"lifecycleNotificationUrl"`
	Resource                 *string `json:"resource"`
	ExpirationDateTime       *string `json:"expirationDateTime"`
	ClientState              *string `json:"clientState"`
}

// subscriptionsAuthorized authenticates a /subscriptions request and
// applies the subscription faults (not presence throttling: subscriptions
// have their own limits).
func (e *Emulator) subscriptionsAuthorized(r *http.Request) (*claims, *apiError) {
	c, err := e.authenticate(r)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if f := &e.subs; f.failNext > 0 {
		f.failNext--
		return nil, injected(f.failStatus)
	}
	return c, nil
}

// FailSubscriptions makes the next n requests to /subscriptions answer
// status (such as 429 or 503), in Graph's error shape.
func (e *Emulator) FailSubscriptions(n, status int) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.subs.failNext, e.subs.failStatus = n, status
}

// eventsResource reads "users/{id}/events" (optionally with a leading
// slash or "/calendar" before "/events") and returns the user.
func eventsResource(resource string) (string, bool) {
	parts := strings.Split(strings.Trim(resource, "/"), "/")
	if len(parts) == 4 && strings.EqualFold(parts[2], "calendar") {
		parts = []string{parts[0], parts[1], parts[3]}
	}
	if len(parts) != 3 || !strings.EqualFold(parts[0], "users") || !strings.EqualFold(parts[2], "events") || parts[1] == "" {
		return "", false
	}
	return parts[1], true
}

// checkChangeType accepts a comma-separated list of created, updated and
// deleted.
func checkChangeType(s string) bool {
	for _, t := range strings.Split(s, ",") {
		if !slices.Contains([]string{"created", "updated", "deleted"}, strings.TrimSpace(t)) {
			return false
		}
	}
	return s != ""
}

// checkNotificationURL accepts absolute http(s) URLs.
func checkNotificationURL(key, s string) *apiError {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return badRequest("ValidationError", "The %s must be an absolute https URL.", key)
	}
	return nil
}

// expiration reads an expirationDateTime and checks it lies after now and
// no more than the maximum lifetime ahead.
func expiration(s string, now time.Time) (time.Time, *apiError) {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, badRequest("BadRequest", "The expirationDateTime '%s' is not a valid date and time.", truncate(s, 64))
	}
	if !t.After(now) {
		return time.Time{}, badRequest("ExtensionError", "Subscription expiration can only be in the future.")
	}
	if t.After(now.Add(MaxEventSubscriptionLifetime)) {
		return time.Time{}, badRequest("ExtensionError", "Subscription expiration can only be %d minutes in the future.", int(MaxEventSubscriptionLifetime/time.Minute))
	}
	return t.UTC(), nil
}

// createSubscription serves POST /subscriptions.
func (e *Emulator) createSubscription(w http.ResponseWriter, r *http.Request) {
	c, aerr := e.subscriptionsAuthorized(r)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	if aerr := requireJSON(r); aerr != nil {
		writeError(w, r, aerr)
		return
	}
	var req subscriptionRequest
	if err := json.Unmarshal(meta(r).body, &req); err != nil {
		writeError(w, r, badRequest("BadRequest", "Unable to read JSON request payload."))
		return
	}
	for _, f := range []struct {
		name  string
		value *string
	}{{"changeType", req.ChangeType}, {"notificationUrl", req.NotificationURL}, {"resource", req.Resource}, {"expirationDateTime", req.ExpirationDateTime}} {
		if f.value == nil || *f.value == "" {
			writeError(w, r, badRequest("BadRequest", "The property '%s' is required.", f.name))
			return
		}
	}
	sub := Subscription{ChangeType: *req.ChangeType, NotificationURL: *req.NotificationURL, Resource: *req.Resource, ApplicationID: c.AppID, Tenant: strings.ToLower(c.TenantID)}
	if req.ClientState != nil {
		sub.ClientState = *req.ClientState
	}
	if req.LifecycleNotificationURL != nil {
		sub.LifecycleNotificationURL = *req.LifecycleNotificationURL
	}
	now := meta(r).now
	var err *apiError
	switch {
	case !checkChangeType(sub.ChangeType):
		err = badRequest("BadRequest", "The changeType '%s' is not supported: use created, updated and deleted, separated by commas.", truncate(sub.ChangeType, 64))
	case len(sub.ClientState) > maxClientState:
		err = badRequest("BadRequest", "The clientState must be at most %d characters.", maxClientState)
	}
	if err == nil {
		err = checkNotificationURL("notificationUrl", sub.NotificationURL)
	}
	if err == nil && sub.LifecycleNotificationURL != "" {
		err = checkNotificationURL("lifecycleNotificationUrl", sub.LifecycleNotificationURL)
	}
	if err == nil {
		sub.ExpirationDateTime, err = expiration(*req.ExpirationDateTime, now)
	}
	if err == nil {
		user, ok := eventsResource(sub.Resource)
		if !ok {
			err = badRequest("InvalidRequest", "The resource '%s' is not supported: the emulator knows users/{id}/events.", truncate(sub.Resource, 128))
		} else {
			err = e.withUser(c, user, calendarRead, errUserNotFound(user), func(u *userState) *apiError {
				sub.User = u.user.ID
				return nil
			})
		}
	}
	if err != nil {
		writeError(w, r, err)
		return
	}
	for _, target := range []string{sub.NotificationURL, sub.LifecycleNotificationURL} {
		if target == "" {
			continue
		}
		if verr := validateEndpoint(r.Context(), target); verr != nil {
			e.log.Info("graph emulator: subscription validation failed", "url", target, "err", verr)
			writeError(w, r, badRequest("ValidationError", "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request."))
			return
		}
	}
	sub.ID = newID()
	e.mu.Lock()
	e.subs.prune(now)
	e.subs.byID[sub.ID] = &sub
	e.mu.Unlock()
	w.Header().Set("Location", strings.TrimSuffix(r.URL.Path, "/")+"/"+sub.ID)
	writeJSON(w, http.StatusCreated, subscriptionResource(r, sub))
}

// validateEndpoint sends Graph's validation request to target and checks
// the answer: 200, text/plain, the token itself, within 10 seconds.
func validateEndpoint(ctx context.Context, target string) error {
	token := "Validation: Testing client application reachability for subscription Request-Id: " + newID()
	u, err := url.Parse(target)
	if err != nil {
		return err
	}
	q := u.Query()
	q.Set("validationToken", token)
	u.RawQuery = q.Encode()
	ctx, cancel := context.WithTimeout(ctx, validationTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	switch {
	case resp.StatusCode != http.StatusOK:
		return fmt.Errorf("answered %d", resp.StatusCode)
	case !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain"):
		return fmt.Errorf("answered content type %q", resp.Header.Get("Content-Type"))
	case string(body) != token:
		return errors.New("answered another token")
	}
	return nil
}

// ownSubscription finds a live subscription of c's application; the caller
// holds Emulator.mu.
func (e *Emulator) ownSubscription(c *claims, id string, now time.Time) (*Subscription, *apiError) {
	e.subs.prune(now)
	s, ok := e.subs.byID[strings.ToLower(id)]
	if !ok || s.ApplicationID != c.AppID || s.Tenant != strings.ToLower(c.TenantID) {
		return nil, notFound("ResourceNotFound", "The object was not found.")
	}
	return s, nil
}

// getSubscription serves GET /subscriptions/{id}.
func (e *Emulator) getSubscription(w http.ResponseWriter, r *http.Request) {
	c, aerr := e.subscriptionsAuthorized(r)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	e.mu.Lock()
	s, aerr := e.ownSubscription(c, r.PathValue("id"), meta(r).now)
	var sub Subscription
	if s != nil {
		sub = *s
	}
	e.mu.Unlock()
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	writeJSON(w, http.StatusOK, subscriptionResource(r, sub))
}

// listSubscriptions serves GET /subscriptions: the application's live
// subscriptions in the tenant.
func (e *Emulator) listSubscriptions(w http.ResponseWriter, r *http.Request) {
	c, aerr := e.subscriptionsAuthorized(r)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	e.mu.Lock()
	e.subs.prune(meta(r).now)
	var list []Subscription
	for _, s := range e.subs.byID {
		if s.ApplicationID == c.AppID && s.Tenant == strings.ToLower(c.TenantID) {
			list = append(list, *s)
		}
	}
	e.mu.Unlock()
	sort.Slice(list, func(i, j int) bool { return list[i].ID < list[j].ID })
	value := make([]map[string]any, 0, len(list))
	for _, s := range list {
		v := subscriptionResource(r, s)
		delete(v, "@odata.context")
		value = append(value, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"@odata.context": metadata(r, "subscriptions"), "value": value})
}

// renewSubscription serves PATCH /subscriptions/{id}: a new
// expirationDateTime and, optionally, a new notificationUrl.
func (e *Emulator) renewSubscription(w http.ResponseWriter, r *http.Request) {
	c, aerr := e.subscriptionsAuthorized(r)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	if aerr := requireJSON(r); aerr != nil {
		writeError(w, r, aerr)
		return
	}
	var req subscriptionRequest
	if err := json.Unmarshal(meta(r).body, &req); err != nil {
		writeError(w, r, badRequest("BadRequest", "Unable to read JSON request payload."))
		return
	}
	if req.ChangeType != nil || req.Resource != nil || req.ClientState != nil || req.LifecycleNotificationURL != nil {
		writeError(w, r, badRequest("BadRequest", "Only expirationDateTime and notificationUrl can be updated."))
		return
	}
	now := meta(r).now
	var exp time.Time
	if req.ExpirationDateTime != nil {
		if exp, aerr = expiration(*req.ExpirationDateTime, now); aerr != nil {
			writeError(w, r, aerr)
			return
		}
	}
	if req.NotificationURL != nil {
		if aerr := checkNotificationURL("notificationUrl", *req.NotificationURL); aerr != nil {
			writeError(w, r, aerr)
			return
		}
	}
	e.mu.Lock()
	s, aerr := e.ownSubscription(c, r.PathValue("id"), now)
	var sub Subscription
	if s != nil {
		if !exp.IsZero() {
			s.ExpirationDateTime = exp
		}
		if req.NotificationURL != nil {
			s.NotificationURL = *req.NotificationURL
		}
		sub = *s
	}
	e.mu.Unlock()
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	writeJSON(w, http.StatusOK, subscriptionResource(r, sub))
}

// deleteSubscription serves DELETE /subscriptions/{id}: 204.
func (e *Emulator) deleteSubscription(w http.ResponseWriter, r *http.Request) {
	c, aerr := e.subscriptionsAuthorized(r)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	e.mu.Lock()
	s, aerr := e.ownSubscription(c, r.PathValue("id"), meta(r).now)
	if s != nil {
		delete(e.subs.byID, s.ID)
	}
	e.mu.Unlock()
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// reauthorizeSubscription serves POST /subscriptions/{id}/reauthorize:
// 204 for a live subscription.
func (e *Emulator) reauthorizeSubscription(w http.ResponseWriter, r *http.Request) {
	c, aerr := e.subscriptionsAuthorized(r)
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	e.mu.Lock()
	_, aerr = e.ownSubscription(c, r.PathValue("id"), meta(r).now)
	e.mu.Unlock()
	if aerr != nil {
		writeError(w, r, aerr)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// Subscriptions returns the live subscriptions, ordered by id.
func (e *Emulator) Subscriptions() []Subscription {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.subs.prune(e.clock.Now())
	out := make([]Subscription, 0, len(e.subs.byID))
	for _, s := range e.subs.byID {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// RemoveSubscription drops a subscription without telling anyone, as when
// Graph loses one; it reports whether there was one.
func (e *Emulator) RemoveSubscription(id string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.subs.byID[strings.ToLower(id)]
	delete(e.subs.byID, strings.ToLower(id))
	return ok
}

// notification is one item of a change or lifecycle notification.
type notification struct {
	SubscriptionID                 string         `json:"subscriptionId"`
	SubscriptionExpirationDateTime string         `json:"subscriptionExpirationDateTime"`
	ChangeType                     string         `json:"changeType,omitempty"`
	Resource                       string         `json:"resource,omitempty"`
	ResourceData                   map[string]any `json:"resourceData,omitempty"`
	ClientState                    string         `json:"clientState,omitempty"`
	TenantID                       string         `json:"tenantId"`
	LifecycleEvent                 string         `json:"lifecycleEvent,omitempty"`
}

// SendLifecycle sends a lifecycle notification (reauthorizationRequired,
// subscriptionRemoved or missed) for subscription id to its
// lifecycleNotificationUrl, and waits for the answer; subscriptionRemoved
// removes the subscription first.
func (e *Emulator) SendLifecycle(ctx context.Context, id, event string) error {
	if !slices.Contains(LifecycleEvents, event) {
		return fmt.Errorf("lifecycle event %q is not one of %s", event, strings.Join(LifecycleEvents, ", "))
	}
	e.mu.Lock()
	s, ok := e.subs.byID[strings.ToLower(id)]
	var sub Subscription
	if ok {
		sub = *s
		if event == "subscriptionRemoved" {
			delete(e.subs.byID, s.ID)
		}
	}
	e.mu.Unlock()
	switch {
	case !ok:
		return fmt.Errorf("no subscription %q", id)
	case sub.LifecycleNotificationURL == "":
		return fmt.Errorf("subscription %s has no lifecycleNotificationUrl", id)
	}
	n := notification{
		SubscriptionID: sub.ID, SubscriptionExpirationDateTime: sub.ExpirationDateTime.Format(time.RFC3339Nano),
		ClientState: sub.ClientState, TenantID: sub.Tenant, LifecycleEvent: event,
	}
	return post(ctx, sub.LifecycleNotificationURL, n)
}

// notifyEvent sends a change notification about a user's event to every
// live subscription on that user's events that wants changeType; it does
// not wait for the answers. The caller holds Emulator.mu.
func (e *Emulator) notifyEvent(userID, eventID, changeType string, now time.Time) {
	e.subs.prune(now)
	for _, s := range e.subs.byID {
		if s.User != userID || !slices.Contains(strings.Split(strings.ReplaceAll(s.ChangeType, " ", ""), ","), changeType) {
			continue
		}
		resource := "Users/" + userID + "/Events/" + eventID
		n := notification{
			SubscriptionID: s.ID, SubscriptionExpirationDateTime: s.ExpirationDateTime.Format(time.RFC3339Nano),
			ChangeType: changeType, Resource: resource, ClientState: s.ClientState, TenantID: s.Tenant,
			ResourceData: map[string]any{"@odata.type": "#Microsoft.Graph.Event", "@odata.id": resource, "id": eventID},
		}
		target, log := s.NotificationURL, e.log
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			if err := post(ctx, target, n); err != nil {
				log.Info("graph emulator: change notification not delivered", "url", target, "err", err)
			}
		}()
	}
}

// post delivers one notification collection and expects a 2xx answer.
func post(ctx context.Context, target string, n notification) error {
	body, err := json.Marshal(map[string]any{"value": []notification{n}})
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("notify %s: %w", target, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 4096))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("notify %s: answered %d", target, resp.StatusCode)
	}
	return nil
}

// adminSubscriptions serves GET /_emulator/subscriptions.
func (e *Emulator) adminSubscriptions(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"value": e.Subscriptions()})
}

// adminLifecycle serves POST /_emulator/subscriptions/{id}/lifecycle with
// {"lifecycleEvent": "..."}: 204 once the endpoint accepted it.
func (e *Emulator) adminLifecycle(w http.ResponseWriter, r *http.Request) {
	var body struct {
		LifecycleEvent string `json:"lifecycleEvent"`
	}
	if err := decodeAdmin(r, &body); err != nil {
		writeError(w, r, err)
		return
	}
	if err := e.SendLifecycle(r.Context(), r.PathValue("id"), body.LifecycleEvent); err != nil {
		writeError(w, r, badRequest("BadRequest", "%v", err))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// adminRemoveSubscription serves DELETE /_emulator/subscriptions/{id}:
// the subscription is gone without a notification.
func (e *Emulator) adminRemoveSubscription(w http.ResponseWriter, r *http.Request) {
	if !e.RemoveSubscription(r.PathValue("id")) {
		writeError(w, r, notFound("NotFound", "No such subscription."))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
