// Package guessguard holds back a client address that presents wrong
// tokens too often, so that a short token can not be guessed by trying.
// The admin API, the status page's login and the lookup API use it.
package guessguard

import (
	"strconv"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Wrong tokens a client may try: a burst of Attempts, then one every
// Every. A guard remembers at most Clients addresses.
const (
	Attempts = 10
	Every    = 6 * time.Second
	Clients  = 10_000
)

// Guard limits how often one client address may present a wrong token. A
// client past its limit is refused before its token is compared, right or
// wrong. Behind a reverse proxy every client shares the proxy's address,
// and so the limit. It is safe for concurrent use.
type Guard struct {
	now     func() time.Time
	mu      sync.Mutex
	clients map[string]*rate.Limiter
}

// New returns a guard that tells the time by now; nil means time.Now.
func New(now func() time.Time) *Guard {
	if now == nil {
		now = time.Now
	}
	return &Guard{now: now, clients: make(map[string]*rate.Limiter)}
}

// Wait returns how long client must wait before trying a token, zero when
// it may try now.
func (g *Guard) Wait(client string) time.Duration {
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
	return time.Duration((1 - tokens) * float64(Every))
}

// Failed counts a wrong token from client.
func (g *Guard) Failed(client string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	now := g.now()
	l := g.clients[client]
	if l == nil {
		if len(g.clients) >= Clients {
			g.forget(now)
		}
		l = rate.NewLimiter(rate.Every(Every), Attempts)
		g.clients[client] = l
	}
	l.AllowN(now, 1)
}

// forget makes room for a tenth of the clients: it drops those whose
// limit has refilled, which are as good as unknown, and then arbitrary
// ones. Making room for many at once keeps the cost per wrong token
// constant however many addresses try.
func (g *Guard) forget(now time.Time) {
	keep := Clients * 9 / 10
	for client, l := range g.clients {
		if l.TokensAt(now) >= Attempts {
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

// RetryAfter is a Retry-After value for a wait: whole seconds, at least
// one.
func RetryAfter(d time.Duration) string {
	return strconv.Itoa(int(max(1, (d+time.Second-1)/time.Second)))
}
