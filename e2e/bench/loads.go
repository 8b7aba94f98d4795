package main

// Loading a stack: one request of each load checked first, the Redis calls
// a request makes probed, then wrk.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// request makes one request with headers ("Name: value", as wrk takes
// them) and decodes the answer into into.
func request(method, url string, headers []string, body string, want int, into any) (*http.Response, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for _, h := range headers {
		name, value, _ := strings.Cut(h, ": ")
		req.Header.Add(name, value)
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != want {
		return nil, fmt.Errorf("%s %s: %d, want %d: %s", method, url, resp.StatusCode, want, raw)
	}
	if into != nil {
		return resp, json.Unmarshal(raw, into)
	}
	return resp, nil
}

// check makes one request of each load as the load will, and one with a
// forged credential, which every secured stack refuses.
func (s *stack) check() error {
	for i := range loads {
		l := &loads[i]
		if !s.takes(l) {
			continue
		}
		if _, err := request(l.method, l.url(s), l.headers(s.creds), l.body, l.want, nil); err != nil {
			return fmt.Errorf("(%s) %s: %s: %w", s.id, s.name, l.id, err)
		}
		if l.forged != nil && s.bare != s {
			if _, err := request(l.method, l.url(s), l.forged(s.creds), l.body, l.refused, nil); err != nil {
				return fmt.Errorf("(%s) %s: %s with a forged credential: %w", s.id, s.name, l.id, err)
			}
		}
	}
	return nil
}

// client makes the harness's own requests (checks, fills, probes): a
// server that hangs stops the run with an error, not for ever.
var client = &http.Client{Timeout: 30 * time.Second}

// commands is the total of Redis command calls so far on s's Redis nodes
// (INFO commandstats).
func commands(ctx context.Context, s *stack) (int64, error) {
	var n int64
	for _, addr := range s.redis {
		rdb := redis.NewClient(&redis.Options{Addr: addr})
		info, err := rdb.Info(ctx, "commandstats").Result()
		rdb.Close()
		if err != nil {
			return 0, fmt.Errorf("counting Redis commands on %s: %w", addr, err)
		}
		for _, m := range regexp.MustCompile(`:calls=(\d+)`).FindAllStringSubmatch(info, -1) {
			v, _ := strconv.ParseInt(m[1], 10, 64)
			n += v
		}
	}
	return n, nil
}

// probeCalls counts the commands one request of l sends to Redis itself
// (not those its scripts run), with MONITOR on each of s's nodes watching
// 100 requests made one at a time. On one Redis each such command is one
// round trip; on a Cluster, commands to different nodes may travel at once.
func probeCalls(ctx context.Context, s *stack, l *load) (float64, error) {
	const n = 100
	// Let requests still in flight from the last load finish first, then
	// warm up: after a long load an account's cached state may have
	// expired from the store (security.AccountTTL, 5 minutes), and the
	// request that reads it again makes a few more calls once.
	time.Sleep(time.Second)
	for range 10 {
		if _, err := request(l.method, l.url(s), l.headers(s.creds), l.body, l.want, nil); err != nil {
			return 0, err
		}
	}
	type monitor struct {
		conn net.Conn
		r    *bufio.Reader
	}
	var mons []monitor
	for _, addr := range s.redis {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			return 0, err
		}
		defer conn.Close()
		if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
			return 0, err
		}
		r := bufio.NewReader(conn)
		if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "+OK") {
			return 0, fmt.Errorf("MONITOR: %q %v", line, err)
		}
		mons = append(mons, monitor{conn, r})
	}
	for range n {
		if _, err := request(l.method, l.url(s), l.headers(s.creds), l.body, l.want, nil); err != nil {
			return 0, err
		}
	}
	// A marker on each node, then count the client commands seen before it.
	marker := fmt.Sprintf("bench-marker-%d", time.Now().UnixNano())
	calls := 0
	for i, m := range mons {
		rdb := redis.NewClient(&redis.Options{Addr: s.redis[i]})
		err := rdb.Echo(ctx, marker).Err()
		rdb.Close()
		if err != nil {
			return 0, err
		}
		m.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			line, err := m.r.ReadString('\n')
			if err != nil {
				return 0, fmt.Errorf("MONITOR: %v", err)
			}
			if strings.Contains(line, marker) {
				break
			}
			// "+<time> [0 lua] ..." is a command run by a script.
			// Connection set-up (a pool growing, a Cluster client
			// reading the slots) and the instance's mark, refreshed
			// every keepalive, are not per-request calls.
			if strings.Contains(line, " lua] ") || setupCommand.MatchString(line) || strings.Contains(line, `"set" "sg:instance:`) {
				continue
			}
			calls++
		}
	}
	return float64(calls) / n, nil
}

var setupCommand = regexp.MustCompile(`\] "(?i:hello|client|auth|select|ping|cluster|command|readonly)"`)

var (
	reqsRe    = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	totalRe   = regexp.MustCompile(`(\d+) requests in`)
	latencyRe = regexp.MustCompile(`(?m)^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$`)
)

func (h *harness) wrk(ctx context.Context, s *stack, l *load, d time.Duration) (result, error) {
	script := ""
	if l.body != "" {
		script = filepath.Join(h.dir, l.id+".lua")
	}
	return h.wrkScript(ctx, s, l, script, d)
}

// wrkScript runs wrk for d with l's headers and, when script is set, that
// Lua script.
func (h *harness) wrkScript(ctx context.Context, s *stack, l *load, script string, d time.Duration) (result, error) {
	args := []string{"-t" + strconv.Itoa(*threads), "-c" + strconv.Itoa(*connections), "-d" + d.String(), "--latency"}
	for _, v := range l.headers(s.creds) {
		args = append(args, "-H", v)
	}
	if script != "" {
		args = append(args, "-s", script)
	}
	args = append(args, l.url(s))
	cmd := exec.CommandContext(ctx, "wrk", args...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return result{}, fmt.Errorf("wrk: %v\n%s", err, out)
	}
	text := string(out)
	if strings.Contains(text, "Non-2xx or 3xx responses") || strings.Contains(text, "Socket errors") {
		return result{}, fmt.Errorf("wrk saw failures:\n%s%s", text, serverComplaints(s))
	}
	var r result
	r.p50, r.p99 = -1, -1
	m := reqsRe.FindStringSubmatch(text)
	t := totalRe.FindStringSubmatch(text)
	if m == nil || t == nil {
		return result{}, fmt.Errorf("cannot read wrk's output:\n%s", text)
	}
	r.rps, _ = strconv.ParseFloat(m[1], 64)
	r.requests, _ = strconv.ParseInt(t[1], 10, 64)
	for _, l := range latencyRe.FindAllStringSubmatch(text, -1) {
		v, _ := strconv.ParseFloat(l[2], 64)
		switch l[3] {
		case "us":
			v /= 1000
		case "s":
			v *= 1000
		}
		if l[1] == "50" {
			r.p50 = v
		} else {
			r.p99 = v
		}
	}
	if r.p50 < 0 || r.p99 < 0 {
		return result{}, fmt.Errorf("cannot read wrk's latency distribution:\n%s", text)
	}
	return r, nil
}

func median(runs []result, f func(result) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}
