package graphcalendar

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/presence-bridge/presence-bridge/graphclient"
)

// GraphFetcher reads calendar events through a tenant's Graph client.
type GraphFetcher struct {
	Client *graphclient.Client
}

// FetchEvent reads one event; an event Graph no longer has is
// ErrEventNotFound.
func (f GraphFetcher) FetchEvent(ctx context.Context, userID, eventID string) (Meeting, error) {
	e, err := f.Client.GetEvent(ctx, userID, eventID)
	var gerr *graphclient.Error
	if errors.As(err, &gerr) && gerr.StatusCode == http.StatusNotFound {
		return Meeting{}, fmt.Errorf("%w: %v", ErrEventNotFound, err)
	}
	if err != nil {
		return Meeting{}, err
	}
	return Meeting{ID: e.ID, Start: e.Start, End: e.End, ShowAs: e.ShowAs, IsCancelled: e.IsCancelled}, nil
}
