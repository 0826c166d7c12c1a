package identity

import (
	"context"
	"errors"

	"github.com/presence-bridge/presence-bridge/bridge/fault"
)

// Resolver adapts the directory to the apply stage: an unknown user is
// permanent, anything else keeps its class.
type Resolver struct {
	Directory *Directory
}

// Resolve resolves user in tenant to an object id.
func (r Resolver) Resolve(ctx context.Context, tenant, user string) (string, error) {
	id, err := r.Directory.Resolve(ctx, tenant, user)
	if err == nil {
		return id, nil
	}
	var classified *fault.Error
	if errors.Is(err, ErrUnknownUser) && !errors.As(err, &classified) {
		return "", fault.Permanently("unknown user", err)
	}
	return "", err
}
