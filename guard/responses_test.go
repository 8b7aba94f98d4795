package guard_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/go-chi/chi/v5"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
)

const answersDoc = `openapi: 3.0.3
info: {title: answers, version: "1"}
paths:
  /things/{id}:
    get:
      operationId: getThing
      security: []
      x-rate-limit: false
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses:
        '200':
          description: ok
          headers:
            X-Version: {required: true, schema: {type: string}}
          content:
            application/json:
              schema:
                type: object
                required: [id, count]
                properties:
                  id: {type: string}
                  count: {type: integer}
                  tags: {type: array, items: {type: string}}
        '303':
          description: see other
          content:
            application/json: {schema: {type: object}}
        '404': {description: none}
        '301':
          description: moved
          headers:
            Location: {required: true, schema: {type: string}}
          content:
            application/json: {schema: {type: object, required: [to], properties: {to: {type: string}}}}
`

// answers serves answersDoc with the handler answering as the path says.
func answers(t *testing.T, mode guard.ResponseMode) (http.Handler, func() []string) {
	t.Helper()
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/things/{id}", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("X-Secret", "from-the-handler")
		w.Header().Set("Content-Type", "application/json")
		switch chi.URLParam(req, "id") {
		case "good":
			w.Header().Set("X-Version", "1")
			_, _ = w.Write([]byte(`{"id":"good","count":1}`))
		case "missing-member":
			w.Header().Set("X-Version", "1")
			_, _ = w.Write([]byte(`{"id":"secret-data"}`))
		case "wrong-type":
			w.Header().Set("X-Version", "1")
			_, _ = w.Write([]byte(`{"id":"secret-data","count":1,"tags":[7]}`))
		case "no-header":
			_, _ = w.Write([]byte(`{"id":"a","count":1}`))
		case "two-values":
			w.Header().Set("X-Version", "1")
			_, _ = w.Write([]byte(`{"id":"a","count":1}{"secret":"secret-data"}<html>`))
		case "name-twice":
			w.Header().Set("X-Version", "1")
			_, _ = w.Write([]byte(`{"id":"a","count":"secret-data","count":1}`))
		case "teapot":
			w.WriteHeader(http.StatusTeapot)
		case "large":
			w.Header().Set("X-Version", "1")
			_, _ = w.Write([]byte(`{"id":"`))
			_, _ = w.Write([]byte(strings.Repeat("x", guard.MaxCheckedBody)))
			_, _ = w.Write([]byte(`"}`)) // no count: past the bound, not checked
		case "large-no-header":
			_, _ = w.Write([]byte(`{"id":"`))
			_, _ = w.Write([]byte(strings.Repeat("x", guard.MaxCheckedBody)))
			_, _ = w.Write([]byte(`secret-data"}`))
		case "not-found-body":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte(`<h1>secret-data</h1>`))
		case "redirect-html":
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Location", "https://elsewhere.example/")
			w.WriteHeader(http.StatusSeeOther)
			_, _ = w.Write([]byte(`secret-data`))
		case "large-html":
			w.Header().Set("X-Version", "1")
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(strings.Repeat("x", guard.MaxCheckedBody+1)))
		case "not-found-typed":
			w.WriteHeader(http.StatusNotFound) // typed (above), but no body
		case "large-untyped":
			w.Header().Set("X-Version", "1")
			w.Header().Del("Content-Type")
			_, _ = w.Write([]byte("<html>" + strings.Repeat("x", guard.MaxCheckedBody)))
		case "moved":
			w.Header().Set("Location", "/things/good")
			w.WriteHeader(http.StatusMovedPermanently)
			_, _ = w.Write([]byte(`{"to":"/things/good"}`))
		case "moved-no-location":
			w.WriteHeader(http.StatusMovedPermanently)
			_, _ = w.Write([]byte(`{"to":"/things/good"}`))
		case "moved-bad-body":
			w.Header().Set("Location", "/things/good")
			w.WriteHeader(http.StatusMovedPermanently)
			_, _ = w.Write([]byte(`{"secret":"secret-data"}`))
		case "not-found-large":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusNotFound)
			_, _ = w.Write([]byte("secret-data" + strings.Repeat("x", guard.MaxCheckedBody)))
		case "stream-teapot":
			w.WriteHeader(http.StatusTeapot)
			http.NewResponseController(w).Flush()
			_, _ = w.Write([]byte(`secret-data`))
		case "stream":
			w.Header().Set("X-Version", "1")
			_, _ = w.Write([]byte(`{"id":"a",`))
			http.NewResponseController(w).Flush()
			_, _ = w.Write([]byte(`"count":"not a number"}`))
		}
	})
	return checking(t, table, r, mode)
}

// checking guards r with its answers checked in mode (and opts), and
// returns what it reported so far, one "operationId violation" each.
func checking(t *testing.T, table *policy.Table, r chi.Router, mode guard.ResponseMode, opts ...guard.Option) (*guard.Guard, func() []string) {
	t.Helper()
	var mu sync.Mutex
	var got []string
	g, err := guard.New(table, r, append(opts, guard.WithResponseValidation(mode, func(_ *http.Request, op *policy.Operation, vs []guard.ResponseViolation) {
		mu.Lock()
		defer mu.Unlock()
		for _, v := range vs {
			got = append(got, op.ID+" "+v.String())
		}
	}))...)
	if err != nil {
		t.Fatal(err)
	}
	return g, func() []string { mu.Lock(); defer mu.Unlock(); return append([]string(nil), got...) }
}

// An answer that breaks the document is reported (report), or refused
// with a 500 that says nothing of it (enforce); a good one passes
// unchanged either way; off checks nothing. Reports name the JSON pointer
// and what the schema asks, never the value.
func TestResponseValidation(t *testing.T) {
	for _, c := range []struct {
		id, want string // want: the violation reported; "" for none
	}{
		{"good", ""},
		{"missing-member", `getThing 200 body /count: property "count" is missing`},
		{"wrong-type", "getThing 200 body /tags/0: value must be a string"},
		{"no-header", `getThing 200 header: response header "X-Version" missing`},
		// Not one JSON value: openapi3filter decodes the first value alone
		// and keeps the last of a repeated name.
		{"two-values", "getThing 200 body /: the body is not one I-JSON value (RFC 7493): a name repeated in an object, text that is not UTF-8, or data after the value"},
		{"name-twice", "getThing 200 body /: the body is not one I-JSON value (RFC 7493): a name repeated in an object, text that is not UTF-8, or data after the value"},
		{"teapot", "getThing 418 status: the document declares neither this status nor a default"},
		{"large", ""},  // past MaxCheckedBody: sent unchecked
		{"stream", ""}, // flushed while enforcing: sent on, its body unchecked
		// Sent on before their end, their status and headers are still
		// checked: enforcing, the guard answers in their place.
		{"large-no-header", `getThing 200 header: response header "X-Version" missing`},
		{"stream-teapot", "getThing 418 status: the document declares neither this status nor a default"},
		// What openapi3filter does not look at: a body where the status
		// declares none, the media type of a redirect, and that of a body
		// past the bound.
		{"not-found-body", "getThing 404 body /: the document declares no content for this status"},
		{"redirect-html", "getThing 303 content-type: a media type this status does not declare"},
		{"large-html", "getThing 200 content-type: a media type this status does not declare"},
		// A Content-Type alone is no body (middleware often sets one on
		// every answer); a body past the bound must say what it is.
		{"not-found-typed", ""},
		{"large-untyped", "getThing 200 content-type: no media type given; this status declares its media types"},
		// Statuses openapi3filter passes without a look: their headers
		// and body are checked all the same.
		{"moved", ""},
		{"moved-no-location", `getThing 301 header: response header "Location" missing`},
		{"moved-bad-body", `getThing 301 body /to: property "to" is missing`},
		// A body where the status declares none, too large to hold.
		{"not-found-large", "getThing 404 body /: the document declares no content for this status"},
	} {
		for _, mode := range []guard.ResponseMode{guard.ResponsesOff, guard.ResponsesReport, guard.ResponsesEnforce} {
			t.Run(c.id+"/"+mode.String(), func(t *testing.T) {
				h, reported := answers(t, mode)
				w := httptest.NewRecorder()
				// Behind a writer that flushes only through
				// http.ResponseController, as middleware often is.
				h.ServeHTTP(unwrapOnly{w}, httptest.NewRequest("GET", "/things/"+c.id, nil).WithContext(context.Background()))
				if c.id == "stream" && !w.Flushed {
					t.Errorf("the handler's flush did not reach the connection")
				}
				got := reported()
				if c.id == "stream" && mode == guard.ResponsesReport {
					// Reporting, a streamed answer is checked as it went.
					c.want = "getThing 200 body /count: value must be an integer"
				} else if c.id == "stream" {
					c.want = ""
				}
				refused := mode == guard.ResponsesEnforce && c.want != ""
				switch {
				case mode == guard.ResponsesOff && len(got) > 0:
					t.Errorf("off reported %v", got)
				case mode != guard.ResponsesOff && c.want == "" && len(got) > 0:
					t.Errorf("a good answer reported: %v", got)
				case mode != guard.ResponsesOff && c.want != "" && (len(got) != 1 || got[0] != c.want):
					t.Errorf("reported %q, want %q", got, c.want)
				}
				if strings.Contains(strings.Join(got, " "), "secret-data") {
					t.Errorf("a report holds a value of the answer: %v", got)
				}
				if refused {
					if w.Code != 500 || !strings.Contains(w.Body.String(), "response-invalid") || strings.Contains(w.Body.String(), "secret") || w.Header().Get("X-Secret") != "" {
						t.Errorf("enforced: %d %v %.200s; want a 500 response-invalid with nothing of the answer", w.Code, w.Header(), w.Body.String())
					}
				} else if w.Header().Get("X-Secret") == "" || (c.id == "good" && w.Body.String() != `{"id":"good","count":1}`) {
					t.Errorf("the answer did not pass unchanged: %d %v %.80s", w.Code, w.Header(), w.Body.String())
				}
			})
		}
	}
}

// Sampling: report mode checks the body of one answer in n, the status of
// every one.
func TestResponseSample(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/things/{id}", func(w http.ResponseWriter, req *http.Request) {
		if chi.URLParam(req, "id") == "teapot" {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		w.Header().Set("X-Version", "1")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"a"}`)) // no count
	})
	var reasons []string
	g, err := guard.New(table, r, guard.WithResponseSample(3), guard.WithResponseValidation(guard.ResponsesReport, func(_ *http.Request, _ *policy.Operation, vs []guard.ResponseViolation) {
		for _, v := range vs {
			reasons = append(reasons, v.Reason)
		}
	}))
	if err != nil {
		t.Fatal(err)
	}
	for range 9 {
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/things/a", nil))
	}
	if strings.Join(reasons, " ") != "body body body" {
		t.Errorf("9 answers, one body in 3 checked: reported %v", reasons)
	}
	reasons = nil
	for range 4 {
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/things/teapot", nil))
	}
	if strings.Join(reasons, " ") != "status status status status" {
		t.Errorf("an undeclared status is reported for every answer: %v", reasons)
	}
}

// unwrapOnly is a ResponseWriter that reaches the connection's only
// through Unwrap (no Flush method of its own).
type unwrapOnly struct{ w http.ResponseWriter }

func (u unwrapOnly) Header() http.Header         { return u.w.Header() }
func (u unwrapOnly) Write(p []byte) (int, error) { return u.w.Write(p) }
func (u unwrapOnly) WriteHeader(status int)      { u.w.WriteHeader(status) }
func (u unwrapOnly) Unwrap() http.ResponseWriter { return u.w }

// A 103 the handler sends first is not its answer: the client gets the
// status and body that follow, unchanged and unreported, in every mode.
func TestResponseEarlyHints(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Link", "</app.css>; rel=preload")
		w.WriteHeader(http.StatusEarlyHints)
		w.Header().Set("X-Version", "1")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		_, _ = w.Write([]byte(`{"id":"a","count":1}`))
	})
	for _, mode := range []guard.ResponseMode{guard.ResponsesReport, guard.ResponsesEnforce} {
		var got []guard.ResponseViolation
		g, err := guard.New(table, r, guard.WithResponseSample(1), guard.WithResponseValidation(mode, func(_ *http.Request, _ *policy.Operation, vs []guard.ResponseViolation) {
			got = append(got, vs...)
		}))
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(g)
		resp, body := get(t, srv.URL+"/things/a")
		srv.Close()
		if resp.StatusCode != 200 || string(body) != `{"id":"a","count":1}` || len(got) > 0 {
			t.Errorf("%s: %d %s, reported %v; want the 200 as written, nothing reported", mode, resp.StatusCode, body, got)
		}
	}
}

const edgesDoc = `openapi: 3.0.3
info: {title: edges, version: "1"}
x-rate-limit: false
paths:
  /page:
    get:
      operationId: getPage
      security: []
      responses:
        '200': {description: ok, content: {text/plain: {schema: {type: string}}}}
        '404': {description: none}
    head:
      operationId: headPage
      security: []
      responses:
        '200':
          description: ok
          headers:
            X-Version: {required: true, schema: {type: string}}
`

// Enforcing: a body written after a flush on a status that declares none
// is dropped, not sent, and reported; an answer to HEAD (which
// openapi3filter passes without a look) has its required headers checked.
func TestResponseEnforceEdges(t *testing.T) {
	table, err := policy.Compile("edges.yaml", []byte(edgesDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/page", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusNotFound)
		_ = http.NewResponseController(w).Flush()
		_, _ = w.Write([]byte("<h1>stack trace: secret-data</h1>"))
	})
	r.Head("/page", func(w http.ResponseWriter, _ *http.Request) {})
	for _, mode := range []guard.ResponseMode{guard.ResponsesReport, guard.ResponsesEnforce} {
		g, reported := checking(t, table, r, mode)
		srv := httptest.NewServer(g)
		resp, body := get(t, srv.URL+"/page")
		got := reported()
		if want := "getPage 404 body /: the document declares no content for this status"; len(got) != 1 || got[0] != want {
			t.Errorf("%s: reported %q, want %q", mode, got, want)
		}
		if mode == guard.ResponsesEnforce && (resp.StatusCode != 404 || strings.Contains(string(body), "secret-data")) {
			t.Errorf("enforced: %d %q, want the 404 without its body", resp.StatusCode, body)
		}
		resp, err = http.Head(srv.URL + "/page")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		got = reported()[len(got):]
		if want := `headPage 200 header: response header "X-Version" missing`; len(got) != 1 || got[0] != want {
			t.Errorf("%s: HEAD reported %q, want %q", mode, got, want)
		}
		if mode == guard.ResponsesEnforce && resp.StatusCode != 500 {
			t.Errorf("enforced: HEAD answered %d, want 500", resp.StatusCode)
		}
		srv.Close()
	}
}

// A handler that takes the connection (a WebSocket upgrade) can when the
// answers are reported or traced, finding the writer an http.Hijacker as
// it would without the guard; enforcing, it cannot: what it wrote there
// would leave unchecked. Enforcing, a 103 Early Hints carries the headers
// the handler set for it.
func TestResponseHijackAndEarlyHints(t *testing.T) {
	table, err := policy.Compile("edges.yaml", []byte(edgesDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/page", func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Query().Has("hints") {
			w.Header().Set("Link", "</app.css>; rel=preload")
			w.WriteHeader(http.StatusEarlyHints)
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("ok"))
			return
		}
		hj, ok := w.(http.Hijacker)
		if !ok {
			w.WriteHeader(http.StatusTeapot)
			return
		}
		conn, _, err := hj.Hijack()
		if err != nil {
			w.Header().Set("Content-Type", "text/plain")
			_, _ = w.Write([]byte("refused"))
			return
		}
		_, _ = conn.Write([]byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\nConnection: close\r\n\r\nhijacked!"))
		conn.Close()
	})
	r.Head("/page", func(http.ResponseWriter, *http.Request) {})
	for _, c := range []struct {
		name string
		opts []guard.Option
		want string
	}{
		{"report", []guard.Option{guard.WithResponseValidation(guard.ResponsesReport, nil)}, "hijacked!"},
		{"traced", []guard.Option{guard.WithTracerProvider(sdktrace.NewTracerProvider())}, "hijacked!"},
		{"enforce", []guard.Option{guard.WithResponseValidation(guard.ResponsesEnforce, nil)}, "refused"},
	} {
		g, err := guard.New(table, r, c.opts...)
		if err != nil {
			t.Fatal(err)
		}
		srv := httptest.NewServer(g)
		resp, body := get(t, srv.URL+"/page")
		if string(body) != c.want {
			t.Errorf("%s: %d %q, want %q", c.name, resp.StatusCode, body, c.want)
		}
		if c.name == "enforce" {
			var hints []string
			trace := &httptrace.ClientTrace{Got1xxResponse: func(code int, h textproto.MIMEHeader) error {
				hints = append(hints, fmt.Sprint(code, " ", h.Get("Link")))
				return nil
			}}
			req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), "GET", srv.URL+"/page?hints", nil)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if len(hints) != 1 || hints[0] != "103 </app.css>; rel=preload" {
				t.Errorf("enforce: the 1xx answers %q, want one 103 with its Link", hints)
			}
		}
		srv.Close()
	}
}

// get is a GET of url: its answer, and the body read whole.
func get(t *testing.T, url string) (*http.Response, []byte) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, body
}

// A violation reported of an OpenAPI 3.1 document holds no value of the
// answer either: its schemas are JSON Schema, whose validator quoted the
// value ("'secret.person@example.com' does not match pattern").
func TestResponseViolationsHoldNoValue(t *testing.T) {
	for _, version := range []string{"3.0.3", "3.1.0"} {
		t.Run(version, func(t *testing.T) {
			both := "" // an array or a map keyed by digits: JSON Schema's type list
			if version == "3.1.0" {
				both = "\n                  both: {type: [array, object], items: {type: integer}, additionalProperties: {type: integer, maximum: 1}}"
			}
			table, err := policy.Compile("t.yaml", []byte(`openapi: `+version+`
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /me:
    get:
      operationId: getMe
      security: []
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema:
                type: object
                properties:
                  email: {type: string, pattern: '^[a-z]+$'}
                  pin: {type: integer, maximum: 10}
                  code: {type: string, enum: [a, b]}
                  names: {type: object, additionalProperties: false, properties: {a: {type: string}}}
                  counts: {type: object, additionalProperties: {type: integer}}
                  groups: {type: array, items: {type: object, additionalProperties: {type: object, properties: {n: {type: integer, maximum: 1}}}}}
                  mixed: {allOf: [{type: object, properties: {x: {type: integer, maximum: 1}}}]}
                  one: {oneOf: [{type: array, items: {type: integer}}, {type: object, additionalProperties: {type: object, properties: {n: {type: integer, maximum: 1}}}}]}
                  apall: {allOf: [{type: object, additionalProperties: {type: object, properties: {n: {type: integer, maximum: 1}}}}]}`+both+`
`))
			if err != nil {
				t.Fatal(err)
			}
			r := chi.NewRouter()
			r.Get("/me", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"email":"secret.person@example.com","pin":4242,"code":"secretcode","names":{"sk_live_KEY":"x"},` +
					`"counts":{"secret.key@example.com":"seven"},"groups":[{"sk_live_GROUP":{"n":5}}],"mixed":{"x":5},` +
					`"one":{"4222222222222222":{"n":5}},"apall":{"secret.b@example.com":{"n":5}},"both":{"4333333333333333":5}}`))
			})
			var got []string
			g, err := guard.New(table, r, guard.WithResponseValidation(guard.ResponsesEnforce, func(_ *http.Request, _ *policy.Operation, vs []guard.ResponseViolation) {
				for _, v := range vs {
					got = append(got, v.String())
				}
			}))
			if err != nil {
				t.Fatal(err)
			}
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest(http.MethodGet, "/me", nil))
			all := strings.Join(got, "\n")
			if w.Code != 500 || len(got) == 0 || !strings.Contains(all, "/email") {
				t.Fatalf("enforced: %d, reported %q; want a 500 and the violation at /email", w.Code, got)
			}
			// A map's keys are the answer's data: its pointer says * for
			// them, and names what the document names.
			for _, pointer := range []string{" /counts/*:", " /groups/0/*/n:", " /mixed/x:", " /one/*/n:", " /apall/*/n:"} {
				if !strings.Contains(all, pointer) {
					t.Errorf("no violation at%s in %s", pointer, all)
				}
			}
			for _, value := range []string{"secret", "4242", "4,242", "sk_live", "4222", "4333"} {
				if strings.Contains(all, value) {
					t.Errorf("a report holds a value of the answer (%s): %s", value, all)
				}
			}
		})
	}
}

// A flush sends the header: a status the handler sets after it never
// reaches the client, which got 200. The answer is checked as the 200 it
// is: reported, or, enforced, refused at the flush.
func TestResponseFlushedBeforeItsStatus(t *testing.T) {
	table, err := policy.Compile("edges.yaml", []byte(edgesDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/page", func(w http.ResponseWriter, _ *http.Request) {
		_ = http.NewResponseController(w).Flush()
		w.WriteHeader(http.StatusNotFound)
	})
	r.Head("/page", func(w http.ResponseWriter, _ *http.Request) {})
	for _, mode := range []guard.ResponseMode{guard.ResponsesReport, guard.ResponsesEnforce} {
		g, reported := checking(t, table, r, mode)
		srv := httptest.NewServer(g)
		resp, _ := get(t, srv.URL+"/page")
		srv.Close()
		want := http.StatusOK // the flush sent it
		if mode == guard.ResponsesEnforce {
			want = http.StatusInternalServerError // refused at the flush
		}
		if resp.StatusCode != want {
			t.Errorf("%s: the client got %d, want %d", mode, resp.StatusCode, want)
		}
		if got := reported(); len(got) != 1 || !strings.HasPrefix(got[0], "getPage 200 content-type: ") {
			t.Errorf("%s: reported %q, want the 200's missing media type", mode, got)
		}
	}
}

// An answer's JSON body of two values, or of a name given twice, was not
// refused when its Content-Type had a parameter that does not parse
// ("application/json; charset"): the one-value check asked mime, which
// refused the type, while openapi3filter read the body as JSON all the
// same, by its first value. Such a Content-Type is said too.
func TestResponseJSONWithMalformedParameters(t *testing.T) {
	const malformed = "getThing 200 content-type: a Content-Type whose parameters do not parse"
	const twice = "getThing 200 body /: the body is not one I-JSON value (RFC 7493): a name repeated in an object, text that is not UTF-8, or data after the value"
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{"application/json; charset", "application/json;;", "application/json; charset="} {
		for body, want := range map[string][]string{
			`{"id":"a","count":1}{"secret":"secret-data"}`: {malformed, twice},
			`{"id":"a","count":"secret-data","count":1}`:   {malformed, twice},
			`{"id":"a","count":1}`:                         {malformed},
		} {
			r := chi.NewRouter()
			r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("X-Version", "1")
				w.Header().Set("Content-Type", ct)
				_, _ = w.Write([]byte(body))
			})
			g, reported := checking(t, table, r, guard.ResponsesEnforce)
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest("GET", "/things/a", nil))
			if got := reported(); w.Code != http.StatusInternalServerError || !slices.Equal(got, want) {
				t.Errorf("Content-Type %q, body %s: %d, reported %q; want 500, %q", ct, body, w.Code, got, want)
			}
		}
	}
}

// A media type a status does not declare is a content-type finding,
// whichever check found it (openapi3filter's reason quotes the answer's
// value, and was counted as a header's).
func TestResponseUndeclaredMediaTypeIsContentType(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{"text/plain", "application/xml", "text/csv"} {
		r := chi.NewRouter()
		r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Version", "1")
			w.Header().Set("Content-Type", ct)
			_, _ = w.Write([]byte("secret-data"))
		})
		g, reported := checking(t, table, r, guard.ResponsesReport)
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/things/a", nil))
		if got := reported(); len(got) != 1 || got[0] != "getThing 200 content-type: a media type this status does not declare" {
			t.Errorf("Content-Type %s: reported %q, want one content-type finding", ct, got)
		}
	}
}

// The bodies of the statuses openapi3filter passes without a look (301,
// 304, 307, 308), which the guard checks itself, were checked as OpenAPI
// 3.0 schemas in a 3.1 document: const and type lists went unchecked.
func TestResponseRedirectBodiesOfA31Document(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(`openapi: 3.1.0
info: {title: answers, version: "1"}
paths:
  /things/{id}:
    get:
      operationId: getThing
      security: []
      x-rate-limit: false
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses:
        '200':
          description: ok
          content: {application/json: {schema: {$ref: '#/components/schemas/To'}}}
        '301':
          description: moved
          headers: {Location: {required: true, schema: {type: string}}}
          content: {application/json: {schema: {$ref: '#/components/schemas/To'}}}
components:
  schemas:
    To: {type: object, required: [to], properties: {to: {type: string, const: /x}, n: {type: [integer, "null"]}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	for _, body := range []string{`{"to":"/elsewhere"}`, `{"to":"/x","n":"many"}`, `{"to":"/x","n":null}`} {
		for _, status := range []int{http.StatusOK, http.StatusMovedPermanently} {
			r := chi.NewRouter()
			r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.Header().Set("Location", "/x")
				w.WriteHeader(status)
				_, _ = w.Write([]byte(body))
			})
			g, _ := checking(t, table, r, guard.ResponsesEnforce)
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest("GET", "/things/a", nil))
			if good := body == `{"to":"/x","n":null}`; good != (w.Code == status) {
				t.Errorf("%d %s: answered %d", status, body, w.Code)
			}
		}
	}
}

// Reporting, an answer was checked with its headers as they stood when
// the handler returned: a required header set after WriteHeader, which
// never left, passed; one removed after passed the other way. The check
// reads the headers as they went, on the answers whose body is checked
// and on the others (WithResponseSample).
func TestResponseReportChecksTheHeadersSent(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, sample := range []int{1, 1000} {
		r := chi.NewRouter()
		r.Get("/things/{id}", func(w http.ResponseWriter, req *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			if chi.URLParam(req, "id") == "late" {
				w.WriteHeader(http.StatusOK)
				w.Header().Set("X-Version", "1") // too late: never sent
			} else {
				w.Header().Set("X-Version", "1")
				_, _ = w.Write([]byte(`{"id":"a","count":1}`))
				w.Header().Del("X-Version") // sent all the same
				return
			}
			_, _ = w.Write([]byte(`{"id":"a","count":1}`))
		})
		g, reported := checking(t, table, r, guard.ResponsesReport, guard.WithResponseSample(sample))
		srv := httptest.NewServer(g)
		for _, id := range []string{"late", "removed"} {
			before := len(reported())
			resp, err := http.Get(srv.URL + "/things/" + id)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			sent := resp.Header.Get("X-Version") != ""
			got := reported()[before:]
			if missing := slices.Contains(got, `getThing 200 header: response header "X-Version" missing`); missing == sent {
				t.Errorf("sample %d, %s: X-Version sent %v, reported %q", sample, id, sent, got)
			}
		}
		srv.Close()
	}
}

// The headers as they went, continued (helper-123): a required header
// sent as a trailer (announced in Trailer, set after the body) is sent;
// a status declared by its range ('2XX') is checked by the range's
// headers; enforcing, an answer sent on at a flush is reported with the
// headers it went with.
func TestResponseHeadersSentTrailersRangesFlushes(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(`openapi: 3.0.3
info: {title: answers, version: "1"}
paths:
  /things/{id}:
    get:
      operationId: getThing
      security: []
      x-rate-limit: false
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses:
        '2XX':
          description: ok
          headers:
            X-Version: {required: true, schema: {type: string}}
          content: {application/json: {schema: {type: object}}}
`))
	if err != nil {
		t.Fatal(err)
	}
	answers, err := policy.Compile("answers.yaml", []byte(answersDoc)) // '200', not a range
	if err != nil {
		t.Fatal(err)
	}
	const missing = `getThing 200 header: response header "X-Version" missing`
	for _, c := range []struct {
		id      string
		mode    guard.ResponseMode
		handler func(w http.ResponseWriter)
		want    []string
	}{
		{"trailer-200", guard.ResponsesReport, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Trailer", "X-Version")
			_, _ = w.Write([]byte(`{"id":"a","count":1}`))
			w.Header().Set("X-Version", "1")
		}, nil},
		{"trailer", guard.ResponsesReport, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Trailer", "X-Version")
			_, _ = w.Write([]byte(`{}`))
			w.Header().Set("X-Version", "1")
		}, nil},
		{"range-late", guard.ResponsesReport, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusOK)
			w.Header().Set("X-Version", "1") // never sent
			_, _ = w.Write([]byte(`{}`))
		}, []string{missing}},
		{"flushed-then-removed", guard.ResponsesEnforce, func(w http.ResponseWriter) {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Version", "1")
			_, _ = w.Write([]byte(`{`))
			http.NewResponseController(w).Flush()
			w.Header().Del("X-Version") // sent all the same
			_, _ = w.Write([]byte(`}`))
		}, nil},
	} {
		r := chi.NewRouter()
		r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) { c.handler(w) })
		doc := table
		if strings.HasSuffix(c.id, "-200") {
			doc = answers
		}
		g, reported := checking(t, doc, r, c.mode)
		srv := httptest.NewServer(g)
		resp, err := http.Get(srv.URL + "/things/a")
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		sent := resp.Header.Get("X-Version") != "" || resp.Trailer.Get("X-Version") != ""
		if got := reported(); !slices.Equal(got, c.want) || sent == (c.want != nil) {
			t.Errorf("%s: X-Version sent %v, reported %q; want %q", c.id, sent, got, c.want)
		}
	}
}

// A Content-Type whose parameters do not parse is said on every answer
// checked, not only on those whose body is checked whole: one whose body
// is not sampled, or too large to hold.
func TestResponseMalformedParametersOnEveryAnswer(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	const want = "getThing 200 content-type: a Content-Type whose parameters do not parse"
	r := chi.NewRouter()
	r.Get("/things/{id}", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("X-Version", "1")
		w.Header().Set("Content-Type", "application/json; charset")
		if chi.URLParam(req, "id") == "large" {
			_, _ = w.Write([]byte(`{"id":"` + strings.Repeat("x", guard.MaxCheckedBody) + `","count":1}`))
			return
		}
		_, _ = w.Write([]byte(`{"id":"a","count":1}`))
	})
	g, reported := checking(t, table, r, guard.ResponsesReport, guard.WithResponseSample(1000))
	for _, id := range []string{"sampled", "not-sampled", "large"} {
		before := len(reported())
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/things/"+id, nil))
		if got := reported()[before:]; !slices.Equal(got, []string{want}) {
			t.Errorf("%s: reported %q, want %q", id, got, want)
		}
	}
}

// A body that is not JSON (YAML) has its pointer read along the schema
// alone: an array's index and a declared name are kept, as in JSON; a
// map's key of digits where the schema may be an array or a map (a 3.1
// type list with patternProperties) is not (helper-144).
func TestResponseViolationPointerOfYAML(t *testing.T) {
	for _, c := range []struct{ version, schema, body, want, secret string }{
		{"3.0.3", "{type: array, items: {type: object, properties: {n: {type: integer, maximum: 1}}}}", "- n: 5\n", " /0/n:", ""},
		{"3.1.0", "{type: [array, object], items: {type: object, properties: {n: {type: integer, maximum: 1}}}, patternProperties: {'^[0-9]+$': {type: object, properties: {n: {type: integer, maximum: 1}}}}}",
			"\"4111111111111111\": {n: 5}\n", " /*/", "4111"},
	} {
		table, err := policy.Compile("t.yaml", []byte(`openapi: `+c.version+`
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /list:
    get:
      operationId: getList
      security: []
      responses:
        '200':
          description: ok
          content:
            application/yaml:
              schema: `+c.schema+`
`))
		if err != nil {
			t.Fatal(err)
		}
		r := chi.NewRouter()
		r.Get("/list", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/yaml")
			_, _ = w.Write([]byte(c.body))
		})
		var got []string
		g, err := guard.New(table, r, guard.WithResponseValidation(guard.ResponsesReport, func(_ *http.Request, _ *policy.Operation, vs []guard.ResponseViolation) {
			for _, v := range vs {
				got = append(got, v.String())
			}
		}))
		if err != nil {
			t.Fatal(err)
		}
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/list", nil))
		if all := strings.Join(got, "\n"); !strings.Contains(all, c.want) || c.secret != "" && strings.Contains(all, c.secret) {
			t.Errorf("%s: reported %q, want a violation at %s and no %q", c.version, all, c.want, c.secret)
		}
	}
}
