package guard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
)

const feedDoc = `openapi: 3.0.3
info: {title: feed, version: "1"}
x-rate-limit: false
paths:
  /feed/{how}:
    get:
      operationId: getFeed
      security: []
      parameters: [{name: how, in: path, required: true, schema: {type: string}}]
      responses:
        '200':
          description: ok
          headers:
            X-Count: {required: true, schema: {type: integer}}
          content:
            application/json: {schema: {type: object}}
            text/event-stream: {schema: {type: string}}
            text/html: {schema: {type: string}}
`

// A header's value is checked on every answer, its body seen or not: a
// flushed stream, a body past MaxCheckedBody, an answer not sampled. Only
// its presence was.
func TestResponseHeaderValuesOfAnswersNotHeld(t *testing.T) {
	table, err := policy.Compile("feed.yaml", []byte(feedDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/feed/{how}", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("X-Count", "not-a-number")
		switch chi.URLParam(req, "how") {
		case "whole":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{}`))
		case "html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(`<p>hi</p>`))
		case "stream":
			w.Header().Set("Content-Type", "text/event-stream")
			_, _ = w.Write([]byte("data: 1\n\n"))
			_ = http.NewResponseController(w).Flush()
			_, _ = w.Write([]byte("data: 2\n\n"))
		case "large":
			w.Header().Set("Content-Type", "text/html")
			_, _ = w.Write([]byte(strings.Repeat("x", guard.MaxCheckedBody+1)))
		}
	})
	for _, c := range []struct {
		how    string
		mode   guard.ResponseMode
		sample int
	}{
		{"whole", guard.ResponsesEnforce, 1},
		{"html", guard.ResponsesEnforce, 1},
		{"stream", guard.ResponsesEnforce, 1},
		{"large", guard.ResponsesEnforce, 1},
		{"stream", guard.ResponsesReport, 1},
		{"html", guard.ResponsesReport, 1000}, // the first answer is sampled: one is served before
	} {
		g, reported := checking(t, table, r, c.mode, guard.WithResponseSample(c.sample))
		if c.sample > 1 {
			g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/feed/html", nil))
		}
		before := len(reported())
		srv := httptest.NewServer(g)
		resp, err := http.Get(srv.URL + "/feed/" + c.how)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		srv.Close()
		got := reported()[before:]
		if len(got) == 0 || !strings.Contains(got[0], `200 header: `) || !strings.Contains(got[0], `"X-Count"`) {
			t.Errorf("%s/%s/sample %d: reported %q, want X-Count's value found", c.how, c.mode, c.sample, got)
		}
		if c.mode == guard.ResponsesEnforce && (resp.StatusCode != 500 || resp.Header.Get("X-Count") != "") {
			t.Errorf("%s/%s: the client got %d X-Count=%q; want a 500 response-invalid", c.how, c.mode, resp.StatusCode, resp.Header.Get("X-Count"))
		}
	}
}

// Held, the body checked must be the body that goes: with a Content-Length
// shorter than the body, net/http refused the bytes past it, and the
// client got a 200 with no body, nothing reported.
func TestResponseContentLengthOfTheBodyHeld(t *testing.T) {
	table, err := policy.Compile("feed.yaml", []byte(feedDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, length := range []string{"5", "40"} {
		r := chi.NewRouter()
		r.Get("/feed/{how}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Count", "1")
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Length", length)
			_, _ = w.Write([]byte(`{"a":"bcdefgh"}`))
		})
		g, reported := checking(t, table, r, guard.ResponsesEnforce)
		srv := httptest.NewServer(g)
		resp, err := http.Get(srv.URL + "/feed/x")
		if err != nil {
			t.Fatal(err)
		}
		body, rerr := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		if resp.StatusCode != 500 || len(reported()) != 1 || !strings.Contains(reported()[0], "Content-Length is "+length+", but the body is 15 bytes") {
			t.Errorf("Content-Length %s of 15 bytes, enforced: the client got %d, body %q (read error %v), reported %q; want a 500 response-invalid", length, resp.StatusCode, body, rerr, reported())
		}
	}
}

// What a handler sets after writing its status goes nowhere, as net/http
// sends nothing of it (but trailers): enforcing, the guard sent it, and
// checked it, so a required header set late passed there alone.
func TestResponseHeadersSetLateGoNowhere(t *testing.T) {
	table, err := policy.Compile("feed.yaml", []byte(feedDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/feed/{how}", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Trailer", "X-Sum")
		late := chi.URLParam(req, "how") == "late"
		if !late {
			w.Header().Set("X-Count", "1")
		}
		w.WriteHeader(http.StatusOK)
		if late {
			w.Header().Set("X-Count", "1") // required, and too late
		}
		w.Header().Set("X-Late", "later") // too late
		_, _ = w.Write([]byte(`{}`))
		w.Header().Set("X-Sum", "abc") // a trailer announced
	})
	for _, mode := range []guard.ResponseMode{guard.ResponsesOff, guard.ResponsesReport, guard.ResponsesEnforce} {
		for _, how := range []string{"in-time", "late"} {
			g, reported := checking(t, table, r, mode)
			srv := httptest.NewServer(g)
			resp, err := http.Get(srv.URL + "/feed/" + how)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			srv.Close()
			wantCode, wantReport := 200, how == "late" && mode != guard.ResponsesOff
			if how == "late" && mode == guard.ResponsesEnforce {
				wantCode = 500
			}
			if resp.StatusCode != wantCode || resp.Header.Get("X-Late") != "" || wantCode == 200 && resp.Trailer.Get("X-Sum") != "abc" {
				t.Errorf("%s, %s: %d, X-Late %q, trailer X-Sum %q: want %d, the header set late sent nowhere, the trailer sent",
					mode, how, resp.StatusCode, resp.Header.Get("X-Late"), resp.Trailer.Get("X-Sum"), wantCode)
			}
			if got := reported(); wantReport != (len(got) > 0) || wantReport && !strings.Contains(got[0], `"X-Count" missing`) {
				t.Errorf("%s, %s: reported %q, want X-Count missing: %v", mode, how, got, wantReport)
			}
		}
	}
}

// Reporting, an answer that went before its handler panicked is reported
// as any answer is: the client has it.
func TestResponseOfAPanickingHandlerReported(t *testing.T) {
	table, err := policy.Compile("feed.yaml", []byte(feedDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/feed/{how}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusTeapot) // declared nowhere
		_, _ = w.Write([]byte("stack trace"))
		_ = http.NewResponseController(w).Flush()
		panic("after the answer went")
	})
	for _, sample := range []int{1, 1000} {
		g, reported := checking(t, table, r, guard.ResponsesReport, guard.WithResponseSample(sample))
		recovered := false
		recoverer := http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			defer func() { recovered = recover() != nil }() // as chi's middleware.Recoverer outside the guard
			g.ServeHTTP(w, req)
		})
		for range 2 { // the second is not sampled
			recoverer.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/feed/x", nil))
		}
		if !recovered {
			t.Errorf("sample %d: the panic did not go on", sample)
		}
		if got := reported(); len(got) != 2 || !strings.Contains(got[1], "418 status") {
			t.Errorf("sample %d: reported %q, want both 418s", sample, got)
		}
	}
}

// A Content-Type whose parameter is given twice does not parse: it was
// taken for a type whose body cannot be read, so an enforced JSON body went
// unchecked.
func TestResponseTypeWithARepeatedParameter(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, ct := range []string{"application/json; charset=utf-8", "application/json; charset=utf-8; charset=UTF-8", "application/json; a=1; a=2"} {
		r := chi.NewRouter()
		r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Version", "1")
			w.Header().Set("Content-Type", ct)
			_, _ = w.Write([]byte(`{"id":"secret-data","count":"not a number","extra":{"id":1}}`))
		})
		g, reported := checking(t, table, r, guard.ResponsesEnforce)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest("GET", "/things/a", nil))
		if w.Code != 500 || len(reported()) == 0 {
			t.Errorf("%q: enforced, the client got %d %s; reported %q; want a 500 response-invalid", ct, w.Code, w.Body.String(), reported())
		}
	}
}

// A response mode that is none of the three is refused by New, not taken
// as report and then named by a String that panics (helper-174).
func TestUnknownResponseModeRefused(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	_, err = guard.New(table, chi.NewRouter(), guard.WithResponseValidation(guard.ResponseMode(3), nil))
	if err == nil || !strings.Contains(err.Error(), "WithResponseValidation: mode 3 is none of off, report and enforce") {
		t.Errorf("mode 3: %v", err)
	}
}

const headValuesDoc = `openapi: 3.0.3
info: {title: hv, version: "1"}
paths:
  /items/{id}:
    get:
      operationId: getItem
      security: []
      x-rate-limit: false
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses:
        '200':
          description: ok
          headers:
            X-Count: {required: true, schema: {type: integer}}
          content:
            application/json: {schema: {type: object}}
        '301':
          description: moved
          headers:
            X-Count: {required: true, schema: {type: integer}}
`

// A declared header's value is checked on the answers openapi3filter passes
// without a look (HEAD, 301): X-Count: not-a-number of an integer header
// went out enforced (helper-174).
func TestHeaderValuesOfHEADAndRedirects(t *testing.T) {
	table, err := policy.Compile("hv.yaml", []byte(headValuesDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/items/{id}", func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("X-Count", "not-a-number")
		if chi.URLParam(req, "id") == "moved" {
			w.Header().Set("Location", "/items/a")
			w.WriteHeader(http.StatusMovedPermanently)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	})
	for _, c := range []struct{ method, path, status string }{
		{"GET", "/items/a", "200"}, // the control: refused
		{"HEAD", "/items/a", "200"},
		{"GET", "/items/moved", "301"},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			g, reported := checking(t, table, r, guard.ResponsesEnforce)
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
			got := reported()
			if want := `getItem ` + c.status + ` header: unable to decode header "X-Count" value`; strings.Join(got, " ") != want {
				t.Errorf("X-Count: not-a-number (schema: integer): reported %q, want %q", got, want)
			}
			if w.Code != http.StatusInternalServerError {
				t.Errorf("enforced: answered %d with X-Count %q, want 500 response-invalid", w.Code, w.Header().Get("X-Count"))
			}
		})
	}
}

// A Trailer announced after the status goes nowhere, and so does the header
// it names: reported, the answer lacks it, as it does enforced
// (helper-174).
func TestTrailerAnnouncedLate(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusOK)
		w.Header().Set("Trailer", "X-Version") // too late: goes nowhere
		w.Header().Set("X-Version", "1")
		_, _ = w.Write([]byte(`{"id":"a","count":1}`))
	})
	for _, sample := range []int{1, 2} { // body checked; then not
		g, reported := checking(t, table, r, guard.ResponsesReport, guard.WithResponseSample(sample))
		srv := httptest.NewServer(g)
		var sawHeader, sawTrailer string
		for i := range sample {
			resp, err := http.Get(srv.URL + "/things/a")
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.ReadAll(resp.Body)
			resp.Body.Close()
			if i == sample-1 {
				sawHeader, sawTrailer = resp.Header.Get("X-Version"), resp.Trailer.Get("X-Version")
			}
		}
		srv.Close()
		got := reported()
		if len(got) != sample || !strings.Contains(strings.Join(got, " "), `"X-Version" missing`) {
			t.Errorf("sample %d: the client got X-Version %q as a header, %q as a trailer; reported %q, want X-Version missing on each of %d answers",
				sample, sawHeader, sawTrailer, got, sample)
		}
	}
}

// An answer with two Content-Type (or Content-Encoding) fields was
// checked by the first, application/json, and went out with both: a
// browser takes the last, text/html. It breaks the document, as a
// parameter given twice does (helper-174).
func TestRepeatedContentFields(t *testing.T) {
	table, err := policy.Compile("answers.yaml", []byte(answersDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, second, want string
	}{
		{"Content-Type", "text/html", "getThing 200 content-type: Content-Type given more than once"},
		{"Content-Encoding", "identity", "getThing 200 header: Content-Encoding given more than once"},
	} {
		r := chi.NewRouter()
		r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("X-Version", "1")
			w.Header().Set("Content-Type", "application/json")
			if c.name == "Content-Encoding" {
				w.Header().Set("Content-Encoding", "identity")
			}
			w.Header().Add(c.name, c.second)
			_, _ = w.Write([]byte(`{"id":"<script>alert(1)</script>","count":1}`))
		})
		for _, mode := range []guard.ResponseMode{guard.ResponsesReport, guard.ResponsesEnforce} {
			g, reported := checking(t, table, r, mode)
			w := httptest.NewRecorder()
			g.ServeHTTP(w, httptest.NewRequest("GET", "/things/a", nil))
			if got := strings.Join(reported(), "\n"); got != c.want {
				t.Errorf("%s twice, %v: reported %q, want %q", c.name, mode, got, c.want)
			}
			if mode == guard.ResponsesEnforce && w.Code != http.StatusInternalServerError {
				t.Errorf("%s twice, enforced: answered %d with %q, want 500", c.name, w.Code, w.Header().Values(c.name))
			}
		}
	}
	// The control: one of each passes.
	r := chi.NewRouter()
	r.Get("/things/{id}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("X-Version", "1")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"id":"a","count":1}`))
	})
	g, reported := checking(t, table, r, guard.ResponsesEnforce)
	w := httptest.NewRecorder()
	g.ServeHTTP(w, httptest.NewRequest("GET", "/things/a", nil))
	if got := reported(); len(got) > 0 || w.Code != 200 {
		t.Errorf("one Content-Type: %d, reported %q", w.Code, got)
	}
}

// A body that breaks a schema is a body finding, with its pointer, whatever
// the schema's name: openapi3filter's reason quotes it, and one named
// PageHeader or HttpStatus was reported as a header or status finding
// (helper-174).
func TestBodyOfASchemaNamedLikeAReason(t *testing.T) {
	for _, name := range []string{"PageHeader", "HttpStatus", "ContentType"} {
		doc := strings.ReplaceAll(`openapi: 3.0.3
info: {title: ref, version: "1"}
paths:
  /banner:
    get:
      operationId: getBanner
      security: []
      x-rate-limit: false
      responses:
        '200':
          description: ok
          content:
            application/json:
              schema: {$ref: '#/components/schemas/NAME'}
components:
  schemas:
    NAME:
      type: object
      required: [title]
      properties: {title: {type: string}}
`, "NAME", name)
		table, err := policy.Compile("ref.yaml", []byte(doc))
		if err != nil {
			t.Fatal(err)
		}
		r := chi.NewRouter()
		r.Get("/banner", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"title":7}`))
		})
		g, reported := checking(t, table, r, guard.ResponsesReport)
		g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/banner", nil))
		got := strings.Join(reported(), "\n")
		if want := "getBanner 200 body /title: value must be a string"; got != want {
			t.Errorf("schema %s: reported %q, want %q", name, got, want)
		}
	}
}

// A declared header of one number given twice breaks the document: the
// check read the first, a client joins them or takes the last
// (helper-180). A string may be a list over lines (WWW-Authenticate,
// Link): two lines of one pass.
func TestDeclaredHeaderGivenTwice(t *testing.T) {
	table, err := policy.Compile("feed.yaml", []byte(feedDoc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/feed/{how}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Add("X-Count", "1")
		w.Header().Add("X-Count", "not-a-number")
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{}`))
	})
	for _, method := range []string{"GET", "HEAD"} {
		g, reported := checking(t, table, r, guard.ResponsesEnforce)
		w := httptest.NewRecorder()
		g.ServeHTTP(w, httptest.NewRequest(method, "/feed/x", nil))
		if got := strings.Join(reported(), "\n"); w.Code != http.StatusInternalServerError || !strings.Contains(got, `header: response header "X-Count" given more than once`) {
			t.Errorf("%s, enforced: %d, reported %q; want 500, X-Count given more than once", method, w.Code, got)
		}
	}
}

// Every declared header at fault is said on the answers openapi3filter
// passes without a look, not the first alone (helper-180).
func TestEveryHeaderOfAHEADSaid(t *testing.T) {
	const doc = `openapi: 3.0.3
info: {title: hv, version: "1"}
paths:
  /items/{id}:
    get:
      operationId: getItem
      security: []
      x-rate-limit: false
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses:
        '200':
          description: ok
          headers:
            X-A: {required: true, schema: {type: integer}}
            X-B: {required: true, schema: {type: string}}
`
	table, err := policy.Compile("hv.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	r := chi.NewRouter()
	r.Get("/items/{id}", func(w http.ResponseWriter, _ *http.Request) { w.Header().Set("X-A", "a") })
	g, reported := checking(t, table, r, guard.ResponsesReport)
	g.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("HEAD", "/items/1", nil))
	want := `getItem 200 header: unable to decode header "X-A" value` + "\n" + `getItem 200 header: response header "X-B" missing`
	if got := strings.Join(reported(), "\n"); got != want {
		t.Errorf("HEAD: reported %q, want %q", got, want)
	}
}
