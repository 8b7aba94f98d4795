package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The harness loads the example blog's posts: on a document without them
// (the example's domain replaced) it says so before building or starting
// anything, and on one with them it writes the load's document.
func TestBenchSpecSaysWhatItNeeds(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "bench.yaml")
	blog := filepath.Join(dir, "blog.yaml")
	if err := os.WriteFile(blog, []byte(`openapi: 3.0.3
info: {title: blog, version: '1'}
x-rate-limit: {name: d, limit: 1, window: 1m, key: ip}
paths:
  /posts:
    post:
      operationId: createPost
      x-rate-limit: &writes {name: w, limit: 1, window: 1m, key: ip}
      responses: {'201': {description: ok}}
  /posts/{id}:
    get:
      operationId: getPost
      security: [{}]
      responses: {'200': {description: ok}}
`), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := writeBenchSpec(blog, out, 1000, "1m", 0); err != nil {
		t.Fatalf("a document with the posts: %v", err)
	}
	if data, _ := os.ReadFile(out); !strings.Contains(string(data), "limit: 1000") {
		t.Errorf("the load's document:\n%s", data)
	}
	notes := filepath.Join(dir, "notes.yaml")
	if err := os.WriteFile(notes, []byte("openapi: 3.0.3\ninfo: {title: notes, version: '1'}\nx-rate-limit: {name: d, limit: 1, window: 1m, key: ip}\npaths:\n  /notes:\n    get:\n      operationId: listNotes\n      responses: {'200': {description: ok}}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := writeBenchSpec(notes, out, 1000, "1m", 0)
	if err == nil || !strings.HasPrefix(err.Error(), needsTheBlog+": ") {
		t.Fatalf("a document without the posts: %v, want it to say what the harness needs", err)
	}
}

// A forged credential differs from the real one whatever it ends in: the
// harness checks every secured stack refuses it.
func TestForgeAlwaysDiffers(t *testing.T) {
	for _, real := range []string{"eyJhbGc.e30.sig-abcd", "sg_id.secretAAAA", "BAAA"} {
		if f := forge(real); f == real || len(f) != len(real) {
			t.Errorf("forge(%q) = %q: want another value of the same length", real, f)
		}
	}
	real := "__Host-session=id.secretAAAA; Path=/"
	if f := forgeCookie(real); f == real || !strings.HasPrefix(f, "__Host-session=id.secret") || !strings.HasSuffix(f, "; Path=/") {
		t.Errorf("forgeCookie(%q) = %q: want its secret changed, the rest kept", real, f)
	}
}

// A failed load shows the server's last warnings and errors (a 503 says
// why in the log), no more than ten, and nothing else of the log.
func TestServerComplaints(t *testing.T) {
	log := filepath.Join(t.TempDir(), "specguard.log")
	var b strings.Builder
	b.WriteString(`{"level":"INFO","msg":"listening"}` + "\n")
	for i := range 12 {
		b.WriteString(`{"level":"WARN","msg":"a store is unavailable; answering 503","n":` + string(rune('a'+i)) + "}\n")
	}
	b.WriteString(`{"level":"ERROR","msg":"last"}` + "\n")
	if err := os.WriteFile(log, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	got := serverComplaints(&stack{log: log})
	if n := strings.Count(got, `"level":`); n != 10 || strings.Contains(got, "listening") || !strings.Contains(got, `"msg":"last"`) || strings.Contains(got, `"n":a`) {
		t.Errorf("serverComplaints = %q, want the last 10 warnings and errors", got)
	}
	if got := serverComplaints(&stack{}); got != "" {
		t.Errorf("a stack without a log: %q", got)
	}
}
