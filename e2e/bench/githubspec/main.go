// Command githubspec measures specguard at GitHub's scale: it compiles
// GitHub's REST description (npm @octokit/openapi, api.github.com.json:
// 1,223 operations, 13 MB) once a document default security and
// x-rate-limit are added, and compares the guard's cost on one of its
// routes with its cost on a route of the example's 23-operation table.
//
//	go run ./e2e/bench/githubspec -spec api.github.com.json
//
// `make bench-github` fetches the description and runs it.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"runtime"
	"runtime/pprof"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"
	"unicode/utf16"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/api"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

func main() {
	spec := flag.String("spec", "", "GitHub's api.github.com.json")
	rounds := flag.Int("rounds", 3, "compilations to time")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the compilations to this file")
	flag.Parse()
	if *profile != "" {
		f, err := os.Create(*profile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "githubspec:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "githubspec:", err)
			os.Exit(1)
		}
		defer f.Close()
	}
	err := run(*spec, *rounds)
	pprof.StopCPUProfile()
	if err != nil {
		fmt.Fprintln(os.Stderr, "githubspec:", err)
		os.Exit(1)
	}
}

func run(path string, rounds int) error {
	raw, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	doc, err := withDefaults(raw)
	if err != nil {
		return err
	}
	var times []time.Duration
	var table *policy.Table
	var alloc uint64
	for range rounds {
		runtime.GC()
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		start := time.Now()
		if table, err = policy.Compile("api.github.com.json", doc); err != nil {
			return err
		}
		times = append(times, time.Since(start))
		runtime.ReadMemStats(&after)
		alloc = after.TotalAlloc - before.TotalAlloc
	}
	sort.Slice(times, func(i, j int) bool { return times[i] < times[j] })
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("GitHub REST description: %d bytes, %d operations\n", len(raw), len(table.Operations()))
	fmt.Printf("compile: median %v (min %v, max %v, %d rounds), %d MiB allocated per compile, peak RSS %d MiB (the process)\n",
		times[len(times)/2].Round(time.Millisecond), times[0].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond),
		rounds, alloc>>20, ru.Maxrss>>10)

	// The same description as Python's json.dump writes it by default:
	// every character outside ASCII escaped, those outside the BMP as
	// surrogate pairs (an emoji is added so that there is one).
	escaped := asciiEscaped(bytes.Replace(doc, []byte(`"info":{`), []byte(`"info":{"x-note":"🚀 ✓ café",`), 1))
	start := time.Now()
	t2, err := policy.Compile("api.github.com.ascii.json", escaped)
	if err != nil {
		return fmt.Errorf("the description with \\u escapes: %w", err)
	}
	fmt.Printf("the same with every non-ASCII character \\u-escaped (surrogate pairs included): %d operations, compiled in %v\n",
		len(t2.Operations()), time.Since(start).Round(time.Millisecond))

	example, err := policy.Compile("api/openapi.yaml", api.Spec)
	if err != nil {
		return err
	}
	gh, err := benchGuard(table, "GET", "/repos/octocat/hello-world")
	if err != nil {
		return err
	}
	fmt.Printf("guard, anonymous GET on a %d-operation table (/repos/{owner}/{repo}): %d ns/op, %d allocs/op\n",
		len(table.Operations()), gh.NsPerOp(), gh.AllocsPerOp())
	// Against the same kind of operation of the example: a GET anonymous
	// callers may call, with a path parameter when there is one.
	var op *policy.Operation
	for _, o := range example.Operations() {
		if o.Method == "GET" && o.Security.Anonymous && (op == nil || !strings.Contains(op.Path, "{") && strings.Contains(o.Path, "{")) {
			op = o
		}
	}
	if op == nil {
		fmt.Println("the example's document has no GET operation that admits anonymous callers ({} in its security): no comparison")
		return nil
	}
	route := regexp.MustCompile(`\{[^}]+\}`).ReplaceAllString(op.Path, "p1")
	ex, err := benchGuard(example, "GET", route)
	if err != nil {
		fmt.Printf("the example's %s is no comparison: %v\n", op.ID, err)
		return nil
	}
	fmt.Printf("guard, anonymous GET on the example's %d-operation table (%s, %s): %d ns/op, %d allocs/op\n",
		len(example.Operations()), op.ID, op.Path, ex.NsPerOp(), ex.AllocsPerOp())
	fmt.Printf("ratio: %.2fx\n", float64(gh.NsPerOp())/float64(ex.NsPerOp()))
	return nil
}

// asciiEscaped escapes every character of a JSON document outside ASCII,
// as Python's json.dump does by default.
func asciiEscaped(doc []byte) []byte {
	var b bytes.Buffer
	for _, r := range string(doc) {
		switch {
		case r < 0x80:
			b.WriteRune(r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, hi, lo)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return b.Bytes()
}

// withDefaults adds what the description lacks for specguard: a document
// default security (a bearer token, or anonymous) and x-rate-limit; and
// takes the bytes as they are of a request body of a type request
// validation does not read (POST /markdown/raw's text/x-markdown), which
// guard.New refuses otherwise.
func withDefaults(raw []byte) ([]byte, error) {
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, err
	}
	paths, _ := doc["paths"].(map[string]any)
	for _, item := range paths {
		ops, _ := item.(map[string]any)
		for _, op := range ops {
			body, _ := op.(map[string]any)["requestBody"].(map[string]any)
			content, _ := body["content"].(map[string]any)
			for mt, media := range content {
				if m, ok := media.(map[string]any); ok && m["schema"] != nil && !readBody.MatchString(mt) {
					m["schema"] = map[string]any{"type": "string", "format": "binary"}
				}
			}
		}
	}
	doc["security"] = []any{map[string]any{"bearerAuth": []any{}}, map[string]any{}}
	doc["x-rate-limit"] = []any{
		map[string]any{"name": "anon", "limit": 60, "window": "1h", "burst": 60, "key": "ip", "who": "anonymous"},
		map[string]any{"name": "user", "limit": 5000, "window": "1h", "key": "principal", "who": "authenticated"},
	}
	comps, _ := doc["components"].(map[string]any)
	if comps == nil {
		comps = map[string]any{}
		doc["components"] = comps
	}
	schemes, _ := comps["securitySchemes"].(map[string]any)
	if schemes == nil {
		schemes = map[string]any{}
		comps["securitySchemes"] = schemes
	}
	schemes["bearerAuth"] = map[string]any{"type": "http", "scheme": "bearer"}
	return json.Marshal(doc)
}

// readBody matches the media types request validation reads.
var readBody = regexp.MustCompile(`json|x-www-form-urlencoded|^multipart/|yaml|csv|^text/plain`)

// none is an Authenticator for every scheme that finds no credential: the
// benchmark measures the anonymous path, the same on both tables.
type none struct{}

func (none) Authenticate(context.Context, *http.Request, *policy.Scheme) (*security.Principal, error) {
	return nil, nil
}

// benchGuard measures the guard in front of a chi router holding every
// operation of table, for method and path from many client addresses
// (so that no per-IP tier runs out).
func benchGuard(table *policy.Table, method, path string) (testing.BenchmarkResult, error) {
	r := chi.NewRouter()
	for _, op := range table.Operations() {
		r.Method(op.Method, op.Pattern, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }))
	}
	opts := []guard.Option{guard.WithLimiter(limits.New(limits.NewMemoryStore(nil)))}
	for _, t := range []policy.SchemeType{policy.SchemeBearer, policy.SchemeOAuth2, policy.SchemeAPIKeyHeader, policy.SchemeAPIKeyCookie, policy.SchemeOIDC} {
		opts = append(opts, guard.WithAuthenticator(t, none{}))
	}
	g, err := guard.New(table, r, opts...)
	if err != nil {
		return testing.BenchmarkResult{}, err
	}
	req := httptest.NewRequest(method, path, nil)
	if rec := httptest.NewRecorder(); true {
		g.ServeHTTP(rec, req)
		if rec.Code != 200 {
			return testing.BenchmarkResult{}, fmt.Errorf("%s %s answers %d, not 200: %s", method, path, rec.Code, strings.TrimSpace(rec.Body.String()))
		}
	}
	return testing.Benchmark(func(b *testing.B) {
		b.ReportAllocs()
		i := 0
		w := discard{h: http.Header{}}
		for b.Loop() {
			i++
			req.RemoteAddr = fmt.Sprintf("10.%d.%d.%d:1234", i>>16&255, i>>8&255, i&255)
			clear(w.h)
			g.ServeHTTP(w, req)
		}
	}), nil
}

type discard struct{ h http.Header }

func (d discard) Header() http.Header         { return d.h }
func (d discard) Write(p []byte) (int, error) { return len(p), nil }
func (d discard) WriteHeader(int)             {}
