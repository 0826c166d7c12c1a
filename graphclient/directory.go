package graphclient

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// MaxListPages bounds the pages ListUsers and ListGroupMembers read: at
// 999 objects a page, close to a million users.
const MaxListPages = 1000

// listPageSize is the $top the lists ask for: Graph's largest page of
// directory objects.
const listPageSize = 999

// ErrTooManyPages is a list that did not end within MaxListPages pages.
var ErrTooManyPages = fmt.Errorf("more than %d pages", MaxListPages)

// userType is the @odata.type of a user in a list of directory objects.
const userType = "#microsoft.graph.user"

// ListUsers returns every user of the tenant, with their object id and
// user principal name only (GET /users, needs User.Read.All), following
// @odata.nextLink page after page (999 users a page, at most
// MaxListPages pages). It stops at the first failing page and returns its
// error, as the other calls do.
func (c *Client) ListUsers(ctx context.Context) ([]User, error) {
	return c.listUsers(ctx, "list users", "/users?"+listQuery())
}

// ListGroupMembers returns the users among the direct members of a group
// (GET /groups/{id}/members, needs GroupMember.Read.All), with their
// object id and user principal name only; member groups, devices and
// service principals are left out. It pages as ListUsers does. An unknown
// group is an *Error with StatusCode 404.
func (c *Client) ListGroupMembers(ctx context.Context, groupID string) ([]User, error) {
	op := "list members of group " + groupID
	if strings.TrimSpace(groupID) == "" {
		return nil, fmt.Errorf("%s: %w: empty group id", op, ErrInvalidArgument)
	}
	return c.listUsers(ctx, op, "/groups/"+url.PathEscape(groupID)+"/members?"+listQuery())
}

// listQuery asks for the largest page and the two properties the lists
// return.
func listQuery() string {
	return url.Values{"$select": {"id,userPrincipalName"}, "$top": {fmt.Sprint(listPageSize)}}.Encode()
}

// listUsers reads a list of directory objects from path page by page and
// keeps the users.
func (c *Client) listUsers(ctx context.Context, op, path string) ([]User, error) {
	var users []User
	for page := 1; path != ""; page++ {
		if page > MaxListPages {
			return nil, fmt.Errorf("%s: %w", op, ErrTooManyPages)
		}
		var out struct {
			Value []struct {
				Type string `json:"@odata.type"`
				User
			} `json:"value"`
			NextLink string `json:"@odata.nextLink"`
		}
		if err := c.do(ctx, request{op: fmt.Sprintf("%s (page %d)", op, page), method: http.MethodGet, path: path}, &out); err != nil {
			return nil, err
		}
		for _, v := range out.Value {
			// A user list has no @odata.type; a member list has it on each.
			if v.ID != "" && (v.Type == userType || v.Type == "") {
				users = append(users, User{ID: v.ID, UserPrincipalName: v.UserPrincipalName})
			}
		}
		next, err := c.nextPath(out.NextLink)
		if err != nil {
			return nil, fmt.Errorf("%s (page %d): %w", op, page, err)
		}
		path = next
	}
	return users, nil
}

// nextPath turns an @odata.nextLink into a path below the client's Graph
// URL, or "" when there is none. The link's path must be below the Graph
// URL's (the same API version); its host is not used, so the token only
// ever goes to the configured Graph host.
func (c *Client) nextPath(link string) (string, error) {
	if link == "" {
		return "", nil
	}
	u, err := url.Parse(link)
	if err != nil {
		return "", errors.New("graph's @odata.nextLink is not a URL")
	}
	base, _ := url.Parse(c.graphURL) // checked by New
	rest, ok := strings.CutPrefix(u.EscapedPath(), base.EscapedPath()+"/")
	dots := slices.ContainsFunc(strings.Split(u.Path, "/"), func(s string) bool { return s == "." || s == ".." })
	if !ok || dots || u.Fragment != "" {
		return "", fmt.Errorf("graph's @odata.nextLink %q is not below %s", clean(link, maxField, c.scrub), base.Path)
	}
	path := "/" + rest
	if u.RawQuery != "" {
		path += "?" + u.RawQuery
	}
	return path, nil
}
