package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// postOptions configure one load run.
type postOptions struct {
	url      string
	token    string
	source   string
	domain   string
	duration time.Duration
	conns    int
	users    int
	// rate, when positive, sends that many events per second on a fixed
	// schedule (open loop); otherwise each connection sends its next event
	// as soon as the previous one is answered (full speed).
	rate float64
	// metrics, when set, is the bridge's /metrics URL: after the load the
	// run waits until the bridge has processed every accepted event, for
	// at most applyWait.
	metrics   string
	applyWait time.Duration
	// total, when positive, stops after that many events (the scale run
	// sends one event a user); state, when set, is every event's call
	// state, and calls then names each user's call callPrefix-USER, so
	// that a later run can end the calls an earlier one started.
	total int64
	state string
	calls string
	// tenants, when above one, spreads the users over that many tenants
	// as benchConfig does: user u is in tenant k = u mod tenants, named
	// userNNNN@tenantID(domain, k), and posted by source sourceName(source,
	// k) with token tenantToken(token, k).
	tenants int
	// stages, with metrics, samples where events wait while the load
	// runs and until they are processed (stages.go).
	stages bool
}

func (o *postOptions) flags(fs *flag.FlagSet) {
	fs.StringVar(&o.url, "url", "http://127.0.0.1:8080/v1/events", "where events are posted")
	fs.StringVar(&o.token, "token", "", "the bearer token")
	fs.StringVar(&o.source, "source", "bench", "the source named in the events")
	fs.StringVar(&o.domain, "domain", "contoso.example", "the users' domain (userNNNN@DOMAIN)")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send")
	fs.IntVar(&o.conns, "conns", 64, "keep-alive connections")
	fs.IntVar(&o.users, "users", 1000, "distinct users the events are about")
	fs.Float64Var(&o.rate, "rate", 0, "events per second on a fixed schedule; 0 is full speed")
	fs.StringVar(&o.metrics, "metrics", "", "the bridge's /metrics URL; wait until it processed every accepted event")
	fs.DurationVar(&o.applyWait, "apply-wait", 5*time.Minute, "how long to wait for the bridge to process what it accepted")
}

func (o *postOptions) check() error {
	u, err := url.Parse(o.url)
	switch {
	case err != nil || u.Scheme != "http" || u.Host == "":
		return errors.New("--url must be an http:// URL")
	case o.token == "":
		return errors.New("--token is required")
	case o.duration <= 0 || o.conns < 1 || o.users < 1 || o.rate < 0 || o.applyWait <= 0:
		return errors.New("--duration, --conns, --users and --apply-wait must be positive, --rate not negative")
	}
	return nil
}

// result is what one load run saw.
type result struct {
	rate     float64       // the fixed rate, 0 for full speed
	elapsed  time.Duration // from the first request to the last answer
	accepted int64         // 202 answers
	rejected int64         // other answers
	errors   int64         // requests without an answer
	firstErr string        // the first error or unexpected status, for the report
	// latencies are sorted; at a fixed rate each is measured from when
	// the request was due, so a late sender does not hide a slow server.
	latencies []time.Duration
	// done is the time from the first request until the bridge had
	// processed every accepted event; zero when not measured.
	done     time.Duration
	outcomes map[string]float64 // processed events by outcome, during the run
	stages   stages             // where events waited, when sampled
}

// acceptedPerSecond is 202 answers per second of load.
func (r result) acceptedPerSecond() float64 { return perSecond(r.accepted, r.elapsed) }

// appliedPerSecond is accepted events per second from the first request
// until the bridge had processed them all.
func (r result) appliedPerSecond() float64 { return perSecond(r.accepted, r.done) }

func perSecond(n int64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return float64(n) / d.Seconds()
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of
// sorted latencies, or 0 when there are none.
func percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	return sorted[min(max(rank, 1), len(sorted))-1]
}

func (r result) print(w io.Writer) {
	mode := "full speed"
	if r.rate > 0 {
		mode = fmt.Sprintf("%.0f/s", r.rate)
	}
	fmt.Fprintf(w, "%s: %d requests in %s: %d accepted (202), %d other answers, %d errors; %.0f accepted/s\n",
		mode, r.accepted+r.rejected+r.errors, r.elapsed.Round(time.Millisecond), r.accepted, r.rejected, r.errors, r.acceptedPerSecond())
	fmt.Fprintf(w, "latency p50 %s p99 %s max %s\n", ms(percentile(r.latencies, 50)), ms(percentile(r.latencies, 99)), ms(percentile(r.latencies, 100)))
	if r.firstErr != "" {
		fmt.Fprintf(w, "first failure: %s\n", r.firstErr)
	}
	if r.done > 0 {
		outcomes := slices.Sorted(maps.Keys(r.outcomes))
		for i, o := range outcomes {
			outcomes[i] = fmt.Sprintf("%s %.0f", o, r.outcomes[o])
		}
		fmt.Fprintf(w, "processed (%s), every accepted event %s after the first request: %.0f accepted and applied/s\n",
			strings.Join(outcomes, ", "), r.done.Round(time.Millisecond), r.appliedPerSecond())
	}
	r.stages.print(w, r.rate)
}

func ms(d time.Duration) string { return strconv.FormatFloat(d.Seconds()*1000, 'f', 2, 64) + " ms" }

// post runs one load: events posted over o.conns keep-alive connections
// for o.duration, then, with o.metrics, the wait until the bridge has
// processed every accepted event.
func post(ctx context.Context, o postOptions) (result, error) {
	u, err := url.Parse(o.url)
	if err != nil {
		return result{}, fmt.Errorf("url: %w", err)
	}
	metricsClient := &http.Client{Timeout: 10 * time.Second}
	var before map[string]float64
	var basePage []byte
	if o.metrics != "" {
		if basePage, err = get(ctx, metricsClient, o.metrics); err != nil {
			return result{}, err
		}
		if _, before, err = processed(basePage); err != nil {
			return result{}, err
		}
	}
	stopSampling := make(chan struct{})
	sampled := make(chan stages, 1)
	var sampleErr error
	if o.metrics != "" && o.stages {
		go func() {
			s, err := sampleStages(ctx, metricsClient, o.metrics, basePage, 250*time.Millisecond, stopSampling)
			sampleErr = err
			sampled <- s
		}()
	} else {
		sampled <- stages{}
	}
	defer func() {
		if stopSampling != nil {
			close(stopSampling)
			<-sampled
		}
	}()
	g := newGenerator(o, strconv.FormatInt(time.Now().UnixNano(), 36))
	g.host, g.path = u.Host, u.RequestURI()
	g.start = time.Now()
	g.end = g.start.Add(o.duration)
	if o.rate > 0 {
		g.interval = float64(time.Second) / o.rate
	}
	var wg sync.WaitGroup
	workers := make([]*worker, o.conns)
	for i := range workers {
		workers[i] = &worker{g: g}
		wg.Go(func() { workers[i].run(ctx) })
	}
	wg.Wait()
	r := result{rate: o.rate}
	last := g.start
	for _, w := range workers {
		r.accepted += w.accepted
		r.rejected += w.rejected
		r.errors += w.errors
		r.latencies = append(r.latencies, w.latencies...)
		if w.last.After(last) {
			last = w.last
		}
		if r.firstErr == "" {
			r.firstErr = w.firstErr
		}
	}
	r.elapsed = last.Sub(g.start)
	slices.Sort(r.latencies)
	if ctx.Err() != nil {
		return r, ctx.Err()
	}
	if o.metrics != "" {
		if err := waitProcessed(ctx, metricsClient, o, g.start, before, &r); err != nil {
			return r, err
		}
	}
	close(stopSampling)
	r.stages, stopSampling = <-sampled, nil
	if sampleErr != nil {
		return r, fmt.Errorf("sample where events wait: %w", sampleErr)
	}
	return r, nil
}

// errNotProcessed means the bridge did not process every accepted event
// within the wait.
var errNotProcessed = errors.New("not processed in time")

// waitProcessed polls the bridge's metrics until it has processed (beyond
// before) as many events as were accepted, and records when.
func waitProcessed(ctx context.Context, client *http.Client, o postOptions, start time.Time, before map[string]float64, r *result) error {
	var base float64
	for outcome, n := range before {
		if outcome != outcomeRetry {
			base += n
		}
	}
	deadline := time.Now().Add(o.applyWait)
	for {
		done, by, err := scrape(ctx, client, o.metrics)
		if err != nil {
			return err
		}
		now := time.Now()
		if done-base >= float64(r.accepted) {
			r.done = now.Sub(start)
			r.outcomes = map[string]float64{}
			for outcome, n := range by {
				r.outcomes[outcome] = n - before[outcome]
			}
			return nil
		}
		if now.After(deadline) {
			return fmt.Errorf("%w: the bridge processed %.0f of %d accepted events within %s", errNotProcessed, done-base, r.accepted, o.applyWait)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// generator hands out event numbers to the workers.
type generator struct {
	opts       postOptions
	host, path string
	runID      string
	names      []string // the users' UPNs
	// sources and tokens are each tenant's; user u is in tenant
	// u mod len(sources).
	sources, tokens []string
	start, end      time.Time
	interval        float64 // nanoseconds between events at a fixed rate
	next            atomic.Int64
}

// worker sends events over one keep-alive connection.
type worker struct {
	g        *generator
	conn     net.Conn
	br       *bufio.Reader
	buf      []byte
	accepted int64
	rejected int64
	errors   int64
	firstErr string
	last     time.Time
	// latencies are kept in full: 8 bytes an event is cheap next to
	// what posting it costs, and exact percentiles need no bucket choice.
	latencies []time.Duration
}

func (w *worker) run(ctx context.Context) {
	defer w.close()
	g := w.g
	for ctx.Err() == nil {
		i := g.next.Add(1) - 1
		if g.opts.total > 0 && i >= g.opts.total {
			return
		}
		var due time.Time
		if g.interval > 0 {
			due = g.start.Add(time.Duration(float64(i) * g.interval))
			if !due.Before(g.end) {
				return
			}
			if wait := time.Until(due); wait > 0 {
				select {
				case <-ctx.Done():
					return
				case <-time.After(wait):
				}
			}
		} else {
			due = time.Now()
			if !due.Before(g.end) {
				return
			}
		}
		status, err := w.send(i)
		w.last = time.Now()
		switch {
		case err != nil:
			w.errors++
			w.fail(err.Error())
			w.close()
			if w.conn == nil && time.Now().Before(g.end) {
				time.Sleep(10 * time.Millisecond) // do not spin on a refused connection
			}
			continue
		case status == http.StatusAccepted:
			w.accepted++
		default:
			w.rejected++
			w.fail("status " + strconv.Itoa(status))
		}
		w.latencies = append(w.latencies, w.last.Sub(due))
	}
}

func (w *worker) fail(msg string) {
	if w.firstErr == "" {
		w.firstErr = msg
	}
}

func (w *worker) close() {
	if w.conn != nil {
		_ = w.conn.Close()
		w.conn, w.br = nil, nil
	}
}

// send posts event i and returns the answer's status.
func (w *worker) send(i int64) (int, error) {
	if w.conn == nil {
		c, err := net.DialTimeout("tcp", w.g.host, 5*time.Second)
		if err != nil {
			return 0, fmt.Errorf("connect: %w", err)
		}
		w.conn, w.br = c, bufio.NewReaderSize(c, 4096)
	}
	w.buf = w.g.request(w.buf[:0], i)
	_ = w.conn.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := w.conn.Write(w.buf); err != nil {
		return 0, fmt.Errorf("write request: %w", err)
	}
	resp, err := http.ReadResponse(w.br, nil)
	if err != nil {
		return 0, fmt.Errorf("read answer: %w", err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		return 0, fmt.Errorf("read answer body: %w", err)
	}
	if resp.Close {
		w.close()
	}
	return resp.StatusCode, nil
}

// newGenerator returns the generator of run runID for o's users and
// tenants.
func newGenerator(o postOptions, runID string) *generator {
	g := &generator{opts: o, runID: runID}
	for k := range max(1, o.tenants) {
		g.sources = append(g.sources, sourceName(o.source, k))
		g.tokens = append(g.tokens, tenantToken(o.token, k))
	}
	for u := range o.users {
		g.names = append(g.names, userName(u, tenantID(o.domain, u%len(g.sources))))
	}
	return g
}

// callStates are the states each call of a user goes through, one event
// each.
var callStates = [...]string{"ringing", "active", "ended"}

// request appends the HTTP request of event i to buf. Event i is about
// user i mod users; each user's events walk through calls, three events a
// call, so the bridge sees real state changes.
func (g *generator) request(buf []byte, i int64) []byte {
	body := g.event(nil, i)
	tenant := i % int64(g.opts.users) % int64(len(g.tokens))
	buf = append(buf, "POST "...)
	buf = append(buf, g.path...)
	buf = append(buf, " HTTP/1.1\r\nHost: "...)
	buf = append(buf, g.host...)
	buf = append(buf, "\r\nAuthorization: Bearer "...)
	buf = append(buf, g.tokens[tenant]...)
	buf = append(buf, "\r\nContent-Type: application/json\r\nContent-Length: "...)
	buf = strconv.AppendInt(buf, int64(len(body)), 10)
	buf = append(buf, "\r\n\r\n"...)
	return append(buf, body...)
}

// event appends the JSON of event i to buf.
func (g *generator) event(buf []byte, i int64) []byte {
	users := int64(g.opts.users)
	user, n := i%users, i/users
	buf = append(buf, `{"id":"`...)
	buf = append(buf, g.runID...)
	buf = append(buf, '-')
	buf = strconv.AppendInt(buf, i, 10)
	buf = append(buf, `","source":"`...)
	buf = append(buf, g.sources[user%int64(len(g.sources))]...)
	buf = append(buf, `","type":"call","user":"`...)
	buf = append(buf, g.names[user]...)
	buf = append(buf, `","occurredAt":"`...)
	buf = time.Now().UTC().AppendFormat(buf, time.RFC3339Nano)
	buf = append(buf, `","callId":"`...)
	if g.opts.state != "" {
		buf = append(buf, g.opts.calls...)
		buf = append(buf, '-')
		buf = strconv.AppendInt(buf, user, 10)
		buf = append(buf, `","state":"`...)
		buf = append(buf, g.opts.state...)
		return append(buf, `"}`...)
	}
	buf = append(buf, g.runID...)
	buf = append(buf, '-')
	buf = strconv.AppendInt(buf, user, 10)
	buf = append(buf, '-')
	buf = strconv.AppendInt(buf, n/int64(len(callStates)), 10)
	buf = append(buf, `","state":"`...)
	buf = append(buf, callStates[n%int64(len(callStates))]...)
	return append(buf, `"}`...)
}

// userName is the UPN of bench user u: user0000@domain, user0001@domain...
func userName(u int, domain string) string {
	return fmt.Sprintf("user%04d@%s", u, domain)
}
