package metrics

import (
	"context"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// consumerCacheFor is how long a consumer or dead-letter reading serves
// scrapes, so that several scrapers do not each ask JetStream.
const consumerCacheFor = 2 * time.Second

// scrapeTimeout bounds what a scrape asks JetStream.
const scrapeTimeout = 2 * time.Second

var (
	breakerDesc     = prometheus.NewDesc("presence_bridge_breaker_state", "The tenant's Graph circuit breaker on the bridge holding its lease: 0 closed, 1 half-open, 2 open.", []string{"tenant"}, nil)
	budgetDesc      = prometheus.NewDesc("presence_bridge_budget_remaining", "Graph calls the tenant's budget still allows in the current window, on the bridge holding its lease.", []string{"tenant"}, nil)
	backlogDesc     = prometheus.NewDesc("presence_bridge_writer_backlog", "Users whose desired session differs from what Graph was told, waiting for a call.", []string{"tenant"}, nil)
	sessionsDesc    = prometheus.NewDesc("presence_bridge_sessions", "Users Graph holds an app session for.", []string{"tenant"}, nil)
	manualDesc      = prometheus.NewDesc("presence_bridge_manual_status_users", "Users whose status set by hand shows instead of the app session.", []string{"tenant"}, nil)
	leaseDesc       = prometheus.NewDesc("presence_bridge_lease_held", "1 on the bridge that holds the tenant's writer lease, 0 on the others.", []string{"tenant"}, nil)
	pendingDesc     = prometheus.NewDesc("presence_bridge_consumer_pending", "Stored events the consumer has not delivered yet.", nil, nil)
	ackPendingDesc  = prometheus.NewDesc("presence_bridge_consumer_ack_pending", "Events delivered and not settled yet.", nil, nil)
	deadLettersDesc = prometheus.NewDesc("presence_bridge_deadletters", "Records in the dead-letter stream.", nil, nil)
)

// scraped reads the writers' snapshots and JetStream at scrape time.
type scraped struct {
	m *Metrics

	mu          sync.Mutex
	readAt      time.Time
	consumer    *Consumer
	deadLetters *uint64
}

func (s *scraped) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{breakerDesc, budgetDesc, backlogDesc, sessionsDesc, manualDesc, leaseDesc, pendingDesc, ackPendingDesc, deadLettersDesc} {
		ch <- d
	}
}

func (s *scraped) Collect(ch chan<- prometheus.Metric) {
	opts := s.m.opts
	if opts.TenantState != nil {
		for _, t := range opts.TenantState() {
			id := s.m.tenant(t.ID)
			ch <- prometheus.MustNewConstMetric(leaseDesc, prometheus.GaugeValue, b2f(t.LeaseHeld), id)
			if !t.LeaseHeld {
				continue
			}
			ch <- prometheus.MustNewConstMetric(breakerDesc, prometheus.GaugeValue, float64(t.Breaker), id)
			ch <- prometheus.MustNewConstMetric(budgetDesc, prometheus.GaugeValue, float64(t.BudgetRemaining), id)
			ch <- prometheus.MustNewConstMetric(backlogDesc, prometheus.GaugeValue, float64(t.Backlog), id)
			ch <- prometheus.MustNewConstMetric(sessionsDesc, prometheus.GaugeValue, float64(t.Sessions), id)
			ch <- prometheus.MustNewConstMetric(manualDesc, prometheus.GaugeValue, float64(t.ManualUsers), id)
		}
	}
	consumer, deadLetters := s.read()
	if consumer != nil {
		ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(consumer.Pending))
		ch <- prometheus.MustNewConstMetric(ackPendingDesc, prometheus.GaugeValue, float64(consumer.AckPending))
	}
	if deadLetters != nil {
		ch <- prometheus.MustNewConstMetric(deadLettersDesc, prometheus.GaugeValue, float64(*deadLetters))
	}
}

// read returns the consumer's state and the dead letters' count, read
// from JetStream at most every consumerCacheFor; nil for what could not
// be read.
func (s *scraped) read() (*Consumer, *uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.readAt.IsZero() && time.Since(s.readAt) < consumerCacheFor {
		return s.consumer, s.deadLetters
	}
	ctx, cancel := context.WithTimeout(context.Background(), scrapeTimeout)
	defer cancel()
	s.consumer, s.deadLetters = nil, nil
	if f := s.m.opts.Consumer; f != nil {
		if c, err := f(ctx); err == nil {
			s.consumer = &c
		}
	}
	if f := s.m.opts.DeadLetters; f != nil {
		if n, err := f(ctx); err == nil {
			s.deadLetters = &n
		}
	}
	s.readAt = time.Now()
	return s.consumer, s.deadLetters
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
