package admin

import (
	"time"

	"github.com/presence-bridge/presence-bridge/bridge/internal/guessguard"
)

// guessGuard holds back a client address that presents wrong admin tokens
// too often, to the API or the status page's login. It is the guard the
// lookup API shares (bridge/internal/guessguard).
type guessGuard struct{ g *guessguard.Guard }

func newGuessGuard(now func() time.Time) *guessGuard {
	return &guessGuard{guessguard.New(now)}
}

// wait returns how long client must wait before trying a token, zero when
// it may try now.
func (g *guessGuard) wait(client string) time.Duration { return g.g.Wait(client) }

// failed counts a wrong token from client.
func (g *guessGuard) failed(client string) { g.g.Failed(client) }
