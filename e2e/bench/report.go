package main

// The tables a run prints, one per load, with the targets under each.

import (
	"bytes"
	"fmt"
	"os"
	"regexp"
	"runtime"
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
	fmt.Fprintf(&b, "load: wrk -t%d -c%d -d%s --latency; %d interleaved rounds, medians\n", *threads, *connections, duration, *rounds)
	fmt.Fprintf(&b, "command: go run ./e2e/bench -rounds %d -duration %s\n", *rounds, duration)
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
			if ab := added("b"); ab > 0 {
				fmt.Fprintf(&b, "added by (d) %.1f µs >= 3x (b)'s %.1f µs %s; ", added("d"), ab, mark(added("d") >= 3*ab))
			} else {
				// (b) measured no slower than bare: within the noise, no ratio.
				fmt.Fprintf(&b, "added by (d) %.1f µs >= 3x (b)'s %.1f µs: unmeasured ((b) no slower than bare in this run); ", added("d"), ab)
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
