package main

// The tables a run prints, one per load, with the targets under each.

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
)

var (
	rps = func(r result) float64 { return r.rps }
	p50 = func(r result) float64 { return r.p50 }
	p99 = func(r result) float64 { return r.p99 }
)

// addedMicros is what a stack adds per request over its bare stack, in
// microseconds of the machine's time (every connection, wrk and Redis
// sharing its cores), not one request's latency: 1/rps - 1/rps_bare, of
// the medians over the rounds (issue 22).
func addedMicros(runs, bare []result) float64 {
	return (1/median(runs, rps) - 1/median(bare, rps)) * 1e6
}

// addedRatio is how many times y's added cost x's is, round by round (the
// rounds interleave every stack, so round i of each shares the machine's
// state): the median and the range of the per-round ratios. ok is false
// when x added nothing measurable in some round (its cost within the
// noise of its bare stack's), where no ratio means anything.
func addedRatio(x, y *stack, load string) (med, lo, hi float64, ok bool) {
	xs, xb, ys, yb := x.runs[load], x.bare.runs[load], y.runs[load], y.bare.runs[load]
	n := min(len(xs), len(xb), len(ys), len(yb))
	if n == 0 {
		return 0, 0, 0, false
	}
	ratios := make([]float64, n)
	for i := range n {
		ax := (1/xs[i].rps - 1/xb[i].rps) * 1e6
		if ax <= 0 {
			return 0, 0, 0, false
		}
		ratios[i] = (1/ys[i].rps - 1/yb[i].rps) * 1e6 / ax
	}
	slices.Sort(ratios)
	med = ratios[n/2]
	if n%2 == 0 {
		med = (ratios[n/2-1] + ratios[n/2]) / 2
	}
	return med, ratios[0], ratios[n-1], true
}

// report prints one table per load and, under each, its targets (issue
// 16): (b) >= 0.90x (a) and (c) >= 0.60x (a) in requests/s with one Redis
// round trip, (b) >= 2.5x (d) and (c) >= 2.5x (e) where a peer takes the
// load, p99 of (b) <= 1.2x and of (c) <= 2x p99 of (a).
func report(stacks []*stack, wrkVersion string) string {
	var b bytes.Buffer
	cpu := "unknown"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(data); m != nil {
			cpu = string(m[1])
		}
	}
	fmt.Fprintf(&b, "machine: %s, %d cores, %s, %s\n", cpu, runtime.NumCPU(), runtime.Version(), strings.SplitN(wrkVersion, "\n", 2)[0])
	fmt.Fprintf(&b, "load: wrk -t%d -c%d -d%s --latency; one unrecorded warm-up run of %s per stack and load, then %d interleaved rounds (each starting with the next stack), medians\n",
		*threads, *connections, duration, warmup(), *rounds)
	fmt.Fprintf(&b, "command:%s go run ./e2e/bench -rounds %d -duration %s -clients %d -connections %d -threads %d", passedOnEnv(), *rounds, duration, *clients, *connections, *threads)
	if *only != "" {
		fmt.Fprintf(&b, " -loads %s", *only)
	}
	fmt.Fprintf(&b, "\np99 is wrk's, closed loop at saturation: it follows throughput (connections / req/s) more than it measures latency at a given rate\n")
	byID := map[string]*stack{}
	for _, s := range stacks {
		byID[s.id] = s
	}
	for i := range loads {
		l := &loads[i]
		fmt.Fprintf(&b, "\n### %s\n\n", l.title)
		fmt.Fprintf(&b, "| stack | req/s | p50 ms | p99 ms | req/s vs bare | added µs/req | p99 vs bare | Redis calls/req | Redis cmds/req incl. scripts |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|\n")
		for _, s := range stacks {
			if !s.takes(l) {
				continue
			}
			runs, bare := s.runs[l.id], s.bare.runs[l.id]
			calls, cmds := "-", "-"
			if s.redis != nil {
				calls = fmt.Sprintf("%.2f", s.calls[l.id])
				cmds = fmt.Sprintf("%.2f", median(runs, func(r result) float64 { return float64(r.redisCmds) / float64(r.requests) }))
			}
			fmt.Fprintf(&b, "| (%s) %s | %.0f | %.3f | %.3f | %.2fx | %.1f | %.2fx | %s | %s |\n", s.id, s.name, median(runs, rps),
				median(runs, p50), median(runs, p99), median(runs, rps)/median(bare, rps), addedMicros(runs, bare),
				median(runs, p99)/median(bare, p99), calls, cmds)
		}
		ratio := func(x, y string, f func(result) float64) float64 {
			return median(byID[x].runs[l.id], f) / median(byID[y].runs[l.id], f)
		}
		mark := func(ok bool) string {
			if ok {
				return "met"
			}
			return "MISSED"
		}
		fmt.Fprintf(&b, "\ntargets: (b) %.2fx (a) >= 0.90x %s; (c) %.2fx (a) >= 0.60x %s with %.2f Redis calls/req (1) %s; ",
			ratio("b", "a", rps), mark(ratio("b", "a", rps) >= 0.9), ratio("c", "a", rps), mark(ratio("c", "a", rps) >= 0.6),
			byID["c"].calls[l.id], mark(byID["c"].calls[l.id] == 1))
		if byID["d"].takes(l) {
			fmt.Fprintf(&b, "(b) %.2fx (d) >= 2.5x %s; (c) %.2fx (e) >= 2.5x %s; ", ratio("b", "d", rps), mark(ratio("b", "d", rps) >= 2.5),
				ratio("c", "e", rps), mark(ratio("c", "e", rps) >= 2.5))
			added := func(id string) float64 { return addedMicros(byID[id].runs[l.id], byID[id].bare.runs[l.id]) }
			if med, lo, hi, ok := addedRatio(byID["b"], byID["d"], l.id); ok {
				fmt.Fprintf(&b, "added by (d) %.1f µs, (b) %.1f µs: (d) %.1fx (b) >= 3x %s (median of the rounds' ratios; %.1fx to %.1fx); ", added("d"), added("b"), med, mark(med >= 3), lo, hi)
			} else {
				// (b) measured no slower than bare in some round: within
				// the noise, no ratio.
				fmt.Fprintf(&b, "added by (d) %.1f µs, (b) %.1f µs: (d) >= 3x (b) unmeasured ((b) no slower than bare in some round); ", added("d"), added("b"))
			}
		}
		if byID["i"].takes(l) {
			fmt.Fprintf(&b, "answers checked (report): (b) %.2fx (i) >= 0.90x %s; ", ratio("b", "i", rps), mark(ratio("b", "i", rps) >= 0.9))
		}
		fmt.Fprintf(&b, "p99 (b) %.2fx (a) <= 1.2x %s; p99 (c) %.2fx (a) <= 2x %s\n", ratio("b", "a", p99), mark(ratio("b", "a", p99) <= 1.2),
			ratio("c", "a", p99), mark(ratio("c", "a", p99) <= 2))
	}
	return b.String()
}

// passedOnEnv is the settings of passedOn the harness's environment sets,
// as a command's prefix (" SPECGUARD_STORE_TIMEOUT=1s"), or "".
func passedOnEnv() string {
	var b strings.Builder
	for _, name := range passedOn {
		if v, ok := os.LookupEnv(name); ok {
			fmt.Fprintf(&b, " %s=%s", name, v)
		}
	}
	return b.String()
}
