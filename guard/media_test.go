package guard_test

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/policy"
)

const mediaDoc = `openapi: 3.0.3
info: {title: media, version: "1"}
x-rate-limit: false
paths:
  /page:
    get:
      operationId: getPage
      security: []
      responses:
        '200': {description: ok, content: {text/html: {schema: {type: string}}}}
  /obj/{case}:
    get:
      operationId: getObj
      security: []
      parameters: [{name: case, in: path, required: true, schema: {type: string}}]
      responses:
        '200':
          description: ok
          headers:
            X-Count: {schema: {type: integer, maximum: 10}}
          content:
            application/json: {schema: {type: object, properties: {color: {type: string, enum: [red]}}}}
  /pages/{case}:
    get:
      operationId: getPages
      security: []
      parameters: [{name: case, in: path, required: true, schema: {type: string}}]
      responses:
        '200':
          description: ok
          headers:
            X-Count: {schema: {type: integer, maximum: 10}}
          content: {text/html: {schema: {type: string}}}
  /ws:
    get:
      operationId: ws
      security: []
      responses:
        '101': {description: switching}
`

// mediaServer serves mediaDoc: an HTML page, JSON objects (plain, gzip,
// gzip labelled HTML) and a connection taken over.
func mediaServer(t *testing.T, mode guard.ResponseMode, opts ...guard.Option) (http.Handler, func() []string) {
	t.Helper()
	table, err := policy.Compile("media.yaml", []byte(mediaDoc))
	if err != nil {
		t.Fatal(err)
	}
	gz := func(s string) []byte {
		var b bytes.Buffer
		z := gzip.NewWriter(&b)
		z.Write([]byte(s))
		z.Close()
		return b.Bytes()
	}
	r := chi.NewRouter()
	r.Get("/page", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<h1>hello</h1>")
	})
	r.Get("/obj/{case}", func(w http.ResponseWriter, r *http.Request) {
		switch chi.URLParam(r, "case") {
		case "gzip":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz(`{"color":"red"}`))
		case "bad-header":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Count", "SECRETVALUE")
			w.Write([]byte(`{"color":"red"}`))
		case "header-too-big":
			w.Header().Set("Content-Type", "application/json; charset")
			w.Header().Set("X-Count", "99")
			w.Write([]byte(`{"color":"red"}`))
		case "gzip-html":
			w.Header().Set("Content-Type", "text/html")
			w.Header().Set("Content-Encoding", "gzip")
			w.Write(gz(`<p>hi</p>`))
		default:
			w.Header().Set("Content-Type", "text/html")
		}
	})
	r.Get("/pages/{case}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.Header().Set("X-Count", chi.URLParam(r, "case"))
		fmt.Fprint(w, "<p>hi</p>")
	})
	r.Get("/ws", func(w http.ResponseWriter, _ *http.Request) {
		conn, rw, err := http.NewResponseController(w).Hijack()
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		defer conn.Close()
		rw.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: x\r\nConnection: Upgrade\r\n\r\n")
		rw.Flush()
	})
	return checking(t, table, r, mode, opts...)
}

// A body the checker cannot read (a media type openapi3filter does not
// decode, HTML; a compressed one) is checked for its status, headers and
// media type, not reported as unreadable nor, enforced, refused; a wrong
// media type still is, compressed or not, and on HEAD.
func TestResponseBodiesNotReadable(t *testing.T) {
	for _, mode := range []guard.ResponseMode{guard.ResponsesReport, guard.ResponsesEnforce} {
		h, reported := mediaServer(t, mode)
		for _, c := range []struct {
			method, path string
			code         int
			report       string
		}{
			{"GET", "/page", 200, ""},
			{"GET", "/obj/gzip", 200, ""},
			{"GET", "/obj/gzip-html", 500, "getObj 200 content-type: a media type this status does not declare"},
			{"HEAD", "/obj/html", 500, "getObj 200 content-type: a media type this status does not declare"},
			{"GET", "/obj/bad-header", 500, `getObj 200 header: unable to decode header "X-Count" value`},
			// A Content-Type whose parameters do not parse is said, and the
			// answer is read by the type before them, as openapi3filter does.
			{"GET", "/obj/header-too-big", 500, `getObj 200 content-type: a Content-Type whose parameters do not parse; getObj 200 header: response header "X-Count" doesn't match schema`},
			{"GET", "/pages/5", 200, ""},
			{"GET", "/pages/99", 500, `getPages 200 header: response header "X-Count" doesn't match schema`},
			{"GET", "/pages/many", 500, `getPages 200 header: unable to decode header "X-Count" value`},
		} {
			before := len(reported())
			w := httptest.NewRecorder()
			h.ServeHTTP(w, httptest.NewRequest(c.method, c.path, nil))
			code := c.code
			if mode == guard.ResponsesReport {
				code = 200
			}
			got := strings.Join(reported()[before:], "; ")
			if w.Code != code || got != c.report {
				t.Errorf("%v: %s %s: %d, reported %q; want %d, %q", mode, c.method, c.path, w.Code, got, code, c.report)
			}
			if c.path == "/obj/gzip" && (w.Header().Get("Content-Encoding") != "gzip" || !bytes.HasPrefix(w.Body.Bytes(), []byte{0x1f, 0x8b})) {
				t.Errorf("%v: the compressed answer was changed: %q %q", mode, w.Header().Get("Content-Encoding"), w.Body.String())
			}
		}
	}
}

// A connection the handler takes over answers as it writes on it (101):
// an answer whose body is not sampled is not then reported as an
// undeclared 200.
func TestResponseHijackedNotReportedAs200(t *testing.T) {
	h, reported := mediaServer(t, guard.ResponsesReport, guard.WithResponseSample(4))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for range 4 {
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		fmt.Fprint(conn, "GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		conn.Close()
		if err != nil || resp.StatusCode != 101 {
			t.Fatalf("GET /ws: %v %v", resp, err)
		}
	}
	if got := reported(); len(got) > 0 {
		t.Errorf("hijacked answers reported: %q", got)
	}
}

// A request body of a media type request validation cannot decode
// (application/xml) was declared without a word, and every request sending
// one was refused 400 "unsupported content type": the document promised
// what the service never served. New (and Check) refuse it, naming the
// operation; a range, bytes (format: binary), no schema, or validation off
// are served.
func TestUnreadableRequestBodiesAreRefusedAtStart(t *testing.T) {
	doc := func(content string) *policy.Table {
		t.Helper()
		table, err := policy.Compile("spec.yaml", []byte(`openapi: 3.0.3
info: {title: t, version: "1"}
x-rate-limit: false
paths:
  /books:
    post:
      operationId: addBook
      security: []
      requestBody:
        required: true
        content:
`+content+`
      responses: {'201': {description: made}, '400': {description: bad}}
`))
		if err != nil {
			t.Fatal(err)
		}
		return table
	}
	newGuard := func(table *policy.Table, opts ...guard.Option) error {
		r := chi.NewRouter()
		r.Post("/books", func(http.ResponseWriter, *http.Request) {})
		_, err := guard.New(table, r, opts...)
		return err
	}
	const object = "{schema: {type: object}}"
	for _, c := range []struct {
		content string
		refused string // the media type named, "" when served
	}{
		{"          application/xml: " + object, "application/xml"},
		{"          application/json: " + object + "\n          Text/XML; charset=utf-8: " + object, "text/xml"},
		{"          \"application/json, image/svg+xml\": " + object, "image/svg+xml"},
		{"          application/json: " + object + "\n          application/vnd.books+json: " + object, ""},
		{"          application/xml: {schema: {type: string, format: binary}}", ""},
		{"          application/xml: {}", ""},
		{"          \"*/*\": " + object, ""},
		{"          text/csv: " + object + "\n          application/x-yaml: " + object, ""},
	} {
		table := doc(c.content)
		for name, err := range map[string]error{"New": newGuard(table), "Check": guard.Check(table)} {
			want := "POST /books (addBook): request body " + c.refused + ": request validation reads no such body"
			if c.refused == "" && err != nil {
				t.Errorf("%s, %q: %v", name, c.content, err)
			} else if c.refused != "" && (err == nil || !strings.Contains(err.Error(), want)) {
				t.Errorf("%s, %q: %v, want %q", name, c.content, err, want)
			}
		}
		if err := newGuard(table, guard.WithoutRequestValidation()); err != nil {
			t.Errorf("without request validation, %q: %v", c.content, err)
		}
	}
}
