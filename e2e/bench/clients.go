package main

// The limiter with 1,000 against 1,000,000 client addresses.

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"sync"
)

// A clientRun is specguard (memory store) whose limiter holds one bucket per
// client IP of n, loaded with anonymous requests cycling through them.
type clientRun struct {
	n    int
	s    *stack
	runs []result
	held int // of heldSample addresses, those still charged after the runs
}

// clientBurst is the clients' tier's burst (one request an hour): more
// than any address spends, so that none is refused.
const clientBurst = 100_000

// anonRemaining reads the anon tier's remaining requests from RateLimit.
var anonRemaining = regexp.MustCompile(`"anon";r=(\d+);`)

// heldSample is how many addresses, spread over all of them, are asked
// after the runs whether their bucket is still held.
const heldSample = 200

// clientIP is the k-th client address: 10.x.y.z.
func clientIP(k int) string { return fmt.Sprintf("10.%d.%d.%d", k>>16&255, k>>8&255, k&255) }

// clientsTable measures anonymous GET /posts?limit=1 (one tier, by client IP,
// read from X-Real-IP, which the loopback proxy is trusted to set) on two
// instances: one whose limiter holds 1,000 buckets, one holding -clients.
// Each is filled first (one request per address), then loaded with wrk
// cycling through its addresses, interleaved round after round.
func (h *harness) clientsTable(ctx context.Context, bin string, env []string, dir func(string) string) ([]*clientRun, error) {
	var runs []*clientRun
	for _, n := range []int{1000, *clients} {
		s, err := h.startSpecguard(ctx, bin, append(slices.Clone(env), "SPECGUARD_DATA_DIR="+dir(fmt.Sprintf("clients-%d", n))))
		if err != nil {
			return nil, err
		}
		// The tier counts the address the header names: a second request
		// from one address sees one less remaining; another address does not.
		remaining := func(ip string) (string, error) {
			resp, err := request("GET", s.base+"/posts?limit=1", []string{"X-Real-IP: " + ip}, "", 200, nil)
			if err != nil {
				return "", err
			}
			return resp.Header.Get("RateLimit"), nil
		}
		first, err := remaining("192.0.2.1")
		if err != nil {
			return nil, err
		}
		second, _ := remaining("192.0.2.1")
		other, _ := remaining("192.0.2.2")
		if first == second || other != first {
			return nil, fmt.Errorf("the limiter does not count by X-Real-IP: %q, then %q, another address %q", first, second, other)
		}
		fmt.Fprintf(os.Stderr, "clients: filling %d buckets\n", n)
		if err := fill(ctx, s.base+"/posts?limit=1", n); err != nil {
			return nil, err
		}
		script := filepath.Join(h.dir, fmt.Sprintf("clients-%d.lua", n))
		lua := fmt.Sprintf(`local n, i = %d, 0
request = function()
  i = (i + 1) %% n
  local ip = string.format("10.%%d.%%d.%%d", math.floor(i / 65536) %% 256, math.floor(i / 256) %% 256, i %% 256)
  return wrk.format(nil, nil, {["X-Real-IP"] = ip})
end
`, n)
		if err := os.WriteFile(script, []byte(lua), 0o644); err != nil {
			return nil, err
		}
		runs = append(runs, &clientRun{n: n, s: s})
	}
	l := &load{id: "clients", path: "/posts?limit=1", headers: func(creds) []string { return nil }}
	for round := 1; round <= *rounds; round++ {
		for _, c := range rotated(runs, round-1) {
			fmt.Fprintf(os.Stderr, "round %d/%d: clients: %d addresses\n", round, *rounds, c.n)
			l.id = fmt.Sprintf("clients-%d", c.n)
			r, err := h.wrkScript(ctx, c.s, l, filepath.Join(h.dir, l.id+".lua"), *duration)
			if err != nil {
				return nil, err
			}
			c.runs = append(c.runs, r)
		}
	}
	// Every address was charged by the fill: a bucket the store dropped
	// answers as a new one, with its whole burst but this request left.
	for _, c := range runs {
		for i := range heldSample {
			resp, err := request("GET", c.s.base+"/posts?limit=1", []string{"X-Real-IP: " + clientIP(i*c.n/heldSample)}, "", 200, nil)
			if err != nil {
				return nil, err
			}
			m := anonRemaining.FindStringSubmatch(resp.Header.Get("RateLimit"))
			if m == nil {
				return nil, fmt.Errorf("clients: no remaining count of the anon tier in RateLimit: %q", resp.Header.Get("RateLimit"))
			}
			if r, _ := strconv.Atoi(m[1]); r < clientBurst-1 {
				c.held++
			}
		}
		if c.held != heldSample {
			return nil, fmt.Errorf("clients: the store holding %d addresses dropped the buckets of %d of %d sampled: the table would not measure %d buckets", c.n, heldSample-c.held, heldSample, c.n)
		}
	}
	return runs, nil
}

// fill makes one anonymous request from each of n client addresses, 32 at
// a time.
func fill(ctx context.Context, url string, n int) error {
	next := make(chan int)
	errs := make(chan error, 32)
	var wg sync.WaitGroup
	for range 32 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := range next {
				if _, err := request("GET", url, []string{"X-Real-IP: " + clientIP(k)}, "", 200, nil); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	var err error
feed:
	for k := range n {
		select {
		case next <- k:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil && len(errs) > 0 {
		err = <-errs
	}
	return err
}

func reportClients(runs []*clientRun) string {
	if len(runs) != 2 {
		return ""
	}
	var b bytes.Buffer
	fmt.Fprintf(&b, "\n### Clients: anonymous GET /posts?limit=1, one tier by client IP, memory store holding 1,000 vs %d buckets\n\n", runs[1].n)
	fmt.Fprintf(&b, "| limiter buckets (distinct client IPs, cycled) | req/s | p50 ms | p99 ms |\n|---|---:|---:|---:|\n")
	for _, c := range runs {
		fmt.Fprintf(&b, "| %d | %.0f | %.3f | %.3f |\n", c.n, median(c.runs, rps), median(c.runs, p50), median(c.runs, p99))
	}
	ratio := median(runs[1].runs, rps) / median(runs[0].runs, rps)
	ok := "met"
	if ratio < 0.9 {
		ok = "MISSED"
	}
	fmt.Fprintf(&b, "\nbuckets held after the runs: %d of %d addresses sampled from each store still charged by the fill\n", runs[1].held, heldSample)
	fmt.Fprintf(&b, "target: %d buckets at least 0.90x the throughput of 1,000: %.2fx, %s\n", runs[1].n, ratio, ok)
	return b.String()
}
