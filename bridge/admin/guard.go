package admin

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Wrong admin tokens a client may try: a burst of guessAttempts, then one
// every guessEvery. The guard remembers at most guessClients addresses.
const (
	guessAttempts = 10
	guessEvery    = 6 * time.Second
	guessClients  = 10_000
)

// guessGuard limits how often one client address may present a wrong
// admin token, to the API or the status page's login, so that a short
// token can not be guessed by trying. A client past its limit is refused
// before its token is compared, right or wrong. Behind a reverse proxy
// every client shares the proxy's address, and so the limit.
type guessGuard struct {
	now     func() time.Time
	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

func newGuessGuard(now func() time.Time) *guessGuard {
	if now == nil {
		now = time.Now
	}
	return &guessGuard{now: now, clients: make(map[string]*rate.Limiter)}
}

// wait returns how long client must wait before trying a token, zero when
// it may try now.
func (g *guessGuard) wait(client string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	l := g.clients[client]
	if l == nil {
		return 0
	}
	tokens := l.TokensAt(g.now())
	if tokens >= 1 {
		return 0
	}
	return time.Duration((1 - tokens) * float64(guessEvery))
}

// failed counts a wrong token from client.
func (g *guessGuard) failed(client string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	l := g.clients[client]
	if l == nil {
		if len(g.clients) >= guessClients {
			g.forget(now)
		}
		l = rate.NewLimiter(rate.Every(guessEvery), guessAttempts)
		g.clients[client] = l
	}
	l.AllowN(now, 1)
}

// forget makes room for a tenth of the clients: it drops those whose
// limit has refilled, which are as good as unknown, and then arbitrary
// ones. Making room for many at once keeps the cost per wrong token
// constant however many addresses try.
func (g *guessGuard) forget(now time.Time) {
	keep := guessClients * 9 / 10
	for client, l := range g.clients {
		if l.TokensAt(now) >= guessAttempts {
			delete(g.clients, client)
		}
	}
	for client := range g.clients {
		if len(g.clients) <= keep {
			return
		}
		delete(g.clients, client)
	}
}
