package loadgen

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"latchkey/internal/access"
)

// target is one server under load and the client side that drives it.
type target struct {
	name string
	url  *url.URL // what every request asks for
	tr   *http.Transport
	// cache is the Authority of a gateway, whose token cache statistics
	// the report shows; nil for the others.
	cache *access.Authority

	// auths, if set, are the Authorization values this target is driven
	// with instead of the rig's; prove, if set, adds a DPoP proof to
	// every request: from batch in a round, if set, else signed on the
	// fly.
	auths []string
	prove *prover
	batch *batch

	errs     atomic.Int64           // failed requests, warm-up included
	firstErr atomic.Pointer[string] // the first failure
}

// newTarget returns a target whose client keeps up to conns idle
// connections, so that the load never dials once warm.
func newTarget(name, rawURL string, conns int) (*target, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("loadgen: target %s: %w", name, err)
	}
	tr := &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConnsPerHost:   conns,
		IdleConnTimeout:       90 * time.Second,
		ResponseHeaderTimeout: 30 * time.Second,
		DisableCompression:    true,
	}
	return &target{name: name, url: u, tr: tr}, nil
}

// get makes one request with the Authorization header auth and, unless
// empty, the DPoP header proof, and reads the whole answer. A transport
// error or a status other than 2xx is an error.
func (t *target) get(ctx context.Context, auth, proof string) error {
	req := &http.Request{
		Method:     http.MethodGet,
		URL:        t.url,
		Proto:      "HTTP/1.1",
		ProtoMajor: 1,
		ProtoMinor: 1,
		Header:     http.Header{"Authorization": {auth}},
		Host:       t.url.Host,
	}
	if proof != "" {
		req.Header["Dpop"] = []string{proof}
	}
	resp, err := t.tr.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		return fmt.Errorf("%s: %q", resp.Status, body)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	return err
}

// cacheStats returns the hits and misses of a gateway's token cache so
// far, or zeros for another target.
func (t *target) cacheStats() (hits, misses uint64) {
	if t.cache == nil {
		return 0, 0
	}
	return t.cache.CacheStats()
}

// fail counts a failed request and keeps the first failure's message.
func (t *target) fail(err error) {
	t.errs.Add(1)
	msg := fmt.Sprintf("%s: %v", t.name, err)
	t.firstErr.CompareAndSwap(nil, &msg)
}

// proof returns the DPoP proof for the j-th request of connection i, with
// Authorization auth: none if t is not DPoP, else from t.batch, else
// signed now.
func (t *target) proof(i, j int, auth string) (string, error) {
	switch {
	case t.prove == nil:
		return "", nil
	case t.batch != nil:
		return t.batch.next(i, j, auth)
	}
	return t.prove.proof(auth, time.Now())
}

// step returns the index of the token a connection sends after auths[k],
// of n, when conns connections share them.
func step(k, conns, n int) int {
	if k += conns; k >= n {
		k %= n
	}
	return k
}

// round drives t with conns connections for d. Connection i sends the
// tokens auths[i], auths[i+conns], ... in turn (see step). Each goroutine
// keeps its own latencies; they are merged only at the end. A DPoP target
// takes its proofs from t.batch (see target.proof): the time to get one
// is timed with the request.
func (t *target) round(ctx context.Context, conns int, d time.Duration, auths []string) Round {
	lats := make([][]time.Duration, conns)
	errs := make([]int64, conns)
	start := time.Now()
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			lat := make([]time.Duration, 0, 4096)
			k := i % len(auths)
			for j := 0; ctx.Err() == nil; j, k = j+1, step(k, conns, len(auths)) {
				t0 := time.Now()
				if !t0.Before(deadline) {
					break
				}
				proof, err := t.proof(i, j, auths[k])
				if err == nil {
					err = t.get(ctx, auths[k], proof)
				}
				lat = append(lat, time.Since(t0))
				if err != nil && ctx.Err() == nil {
					errs[i]++
					t.fail(err)
				}
			}
			lats[i] = lat
		})
	}
	wg.Wait()
	return summary(start, lats, errs)
}

// summary is the Round of the requests of every connection since start:
// their latencies and failures, connection by connection.
func summary(start time.Time, lats [][]time.Duration, errs []int64) Round {
	r := Round{Elapsed: time.Since(start)}
	all := slices.Concat(lats...)
	slices.Sort(all)
	r.Requests = int64(len(all))
	for _, n := range errs {
		r.Errors += n
	}
	r.RPS = float64(r.Requests) / r.Elapsed.Seconds()
	r.P50, r.P99 = quantile(all, 0.50), quantile(all, 0.99)
	return r
}

// pacedRound drives t for d at rate requests per second in all, spread
// over conns connections: connection i sends its k-th request at
// start + (k + i/conns) * conns/rate, or at once if the one before it has
// not returned by then. A latency runs from the scheduled time to the end
// of the response (corrected for coordinated omission: a stall counts
// for every request it holds up).
func (t *target) pacedRound(ctx context.Context, conns int, d time.Duration, auths []string, rate float64) Round {
	return t.pacedFrom(ctx, time.Now(), conns, d, auths, rate)
}

// together drives every target of ts at once for d, each as pacedRound
// does at rate, all on one schedule: the k-th request of connection i is
// due at the same instant on every target. Whatever slows the machine
// during the round (a collection, another process, the host) then falls
// on every target alike, and their latencies compare request for request.
// It returns their Rounds in the order of ts.
func together(ctx context.Context, ts []*target, conns int, d time.Duration, auths []string, rate float64) []Round {
	rounds := make([]Round, len(ts))
	start := time.Now()
	var wg sync.WaitGroup
	for i, t := range ts {
		wg.Go(func() { rounds[i] = t.pacedFrom(ctx, start, conns, d, auths, rate) })
	}
	wg.Wait()
	return rounds
}

// pacedFrom is pacedRound with its schedule starting at start.
func (t *target) pacedFrom(ctx context.Context, start time.Time, conns int, d time.Duration, auths []string, rate float64) Round {
	lats := make([][]time.Duration, conns)
	errs := make([]int64, conns)
	interval := time.Duration(float64(conns) / rate * float64(time.Second))
	deadline := start.Add(d)
	var wg sync.WaitGroup
	for i := range conns {
		wg.Go(func() {
			lat := make([]time.Duration, 0, int(d/interval)+1)
			k := i % len(auths)
			at := start.Add(interval * time.Duration(i) / time.Duration(conns))
			for ; ctx.Err() == nil && at.Before(deadline); at, k = at.Add(interval), step(k, conns, len(auths)) {
				if wait := time.Until(at); wait > 0 {
					time.Sleep(wait)
				}
				err := t.get(ctx, auths[k], "")
				lat = append(lat, time.Since(at))
				if err != nil && ctx.Err() == nil {
					errs[i]++
					t.fail(err)
				}
			}
			lats[i] = lat
		})
	}
	wg.Wait()
	return summary(start, lats, errs)
}

// each makes one request with every element of auths, conns at a time,
// and at least atLeast requests in all (cycling through auths). Failures
// are counted on t. A DPoP target signs its proofs on the fly (t.batch
// must be nil).
func (t *target) each(ctx context.Context, conns, atLeast int, auths []string) {
	n := max(len(auths), atLeast)
	var next atomic.Int64
	var wg sync.WaitGroup
	for range conns {
		wg.Go(func() {
			for ctx.Err() == nil {
				k := int(next.Add(1)) - 1
				if k >= n {
					return
				}
				auth := auths[k%len(auths)]
				proof, err := t.proof(0, 0, auth)
				if err == nil {
					err = t.get(ctx, auth, proof)
				}
				if err != nil && ctx.Err() == nil {
					t.fail(err)
				}
			}
		})
	}
	wg.Wait()
}

// quantile returns the nearest-rank q-quantile of sorted, or zero if it
// is empty.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}
