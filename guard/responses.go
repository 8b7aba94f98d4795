package guard

// Response validation: a handler's answer checked against what the
// document declares for its operation, reported, or refused before it
// leaves.

import (
	"bufio"
	"bytes"
	"fmt"
	"maps"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/internal/respcheck"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/problem"
)

// ResponseMode says what the guard does with the handlers' answers.
type ResponseMode uint8

const (
	// ResponsesOff: answers are not checked.
	ResponsesOff ResponseMode = iota
	// ResponsesReport: every answer is checked as it is sent, unchanged;
	// what breaks the document goes to the report function.
	ResponsesReport
	// ResponsesEnforce: an answer is held until it is checked; one that
	// breaks the document is replaced by a 500 problem (response-invalid)
	// that says nothing of it, and reported.
	ResponsesEnforce
)

// ParseResponseMode reads "off", "report" or "enforce".
func ParseResponseMode(s string) (ResponseMode, error) {
	switch s {
	case "off":
		return ResponsesOff, nil
	case "report":
		return ResponsesReport, nil
	case "enforce":
		return ResponsesEnforce, nil
	}
	return 0, fmt.Errorf("%q: want off, report or enforce", s)
}

func (m ResponseMode) String() string {
	return [...]string{"off", "report", "enforce"}[m]
}

// MaxCheckedBody is the largest body the guard checks (and, enforcing,
// holds): a larger one is sent as it comes, its status and headers
// checked, its body not.
const MaxCheckedBody = 1 << 20

// ResponseViolation is one way an answer breaks the document. It never
// holds a value of the answer: the operation's data stays out of logs.
type ResponseViolation struct {
	Status int
	// Reason is "status" (not declared, no default), "header" (a
	// required header missing), "content-type" (a media type the status
	// does not declare) or "body" (against its schema).
	Reason string
	// Pointer is the JSON pointer of the part of the body at fault, for
	// "body" ("/" for the whole body), with a map's keys (names the
	// schema does not declare) written "*".
	Pointer string
	// Detail is what the document asks for there.
	Detail string
}

func (v ResponseViolation) String() string {
	if v.Pointer != "" {
		return fmt.Sprintf("%d %s %s: %s", v.Status, v.Reason, v.Pointer, v.Detail)
	}
	return fmt.Sprintf("%d %s: %s", v.Status, v.Reason, v.Detail)
}

// WithResponseValidation checks the answer of every operation's handler
// against the responses the document declares: its status (or default),
// the headers it marks required, and the body against its media type's
// schema (up to MaxCheckedBody). report, when not nil, gets every answer
// that breaks the document, after it was sent (or replaced). Off by
// default. The guard's own answers (401, 403, 429, ...) are not checked:
// lint says whether the document declares them.
func WithResponseValidation(mode ResponseMode, report func(r *http.Request, op *policy.Operation, violations []ResponseViolation)) Option {
	return func(g *Guard) { g.responses, g.reportResponse = mode, report }
}

// WithResponseSample makes report mode check the body of one answer in n
// (every answer's status and headers still are): the body check decodes
// the answer and walks its schema, which costs a busy service more than
// the rest of the guard. 1, the default, checks every body; enforce mode
// always does.
func WithResponseSample(n int) Option {
	return func(g *Guard) { g.responseSample = uint64(max(n, 1)) }
}

// serveChecked runs the handler of op with its answer checked (h and rctx
// as run takes them).
func (g *Guard) serveChecked(w http.ResponseWriter, r *http.Request, st *opState, h http.Handler, rctx *chi.Context) {
	if g.responses == ResponsesReport && g.responseSample > 1 && (g.answers.Add(1)-1)%g.responseSample != 0 {
		// Not this answer's body: its status and headers alone.
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK, checked: st.checked}
		ran := false
		defer func() {
			if !ran && sw.wrote && !sw.hijacked {
				g.reportPanicked(r, st, sw.status, sw.sent.as(w.Header()))
			}
		}()
		g.run(sw, r, h, rctx)
		ran = true
		if sw.hijacked {
			return // the answer went on the connection, unseen
		}
		if found := checkResponse(r, st, sw.status, sw.sent.as(w.Header()), nil, bodyUnseen); len(found) > 0 && g.reportResponse != nil {
			g.reportResponse(r, st.op, found)
		}
		return
	}
	cw := &checkedWriter{w: w, enforce: g.responses == ResponsesEnforce, checked: st.checked}
	if cw.enforce {
		cw.header = w.Header().Clone()
		// An answer sent on before its end (too large, or flushed) is
		// checked when it goes: its status and headers.
		cw.refuse = func(status int, h http.Header, body bool) (refused, bodyless bool) {
			found := checkResponse(r, st, status, h, nil, bodyPast)
			bodyless = declaresNoContent(st.op, status)
			if body && bodyless {
				found = append(found, noContent(status))
			}
			if len(found) == 0 {
				return false, bodyless
			}
			g.refuseAnswer(w)
			if g.reportResponse != nil {
				g.reportResponse(r, st.op, found)
			}
			return true, bodyless
		}
	}
	ran := false
	defer func() {
		// Enforcing, the answer of a handler that panics is dropped, or
		// was checked as it went.
		if !ran && !cw.enforce && cw.wrote && !cw.hijacked {
			g.reportPanicked(r, st, cw.status, cw.sent.as(cw.Header()))
		}
	}()
	g.run(cw, r, h, rctx)
	ran = true
	if cw.refused || cw.hijacked {
		return // answered; or the answer went on the connection, unseen
	}
	if !cw.wrote {
		cw.WriteHeader(http.StatusOK)
	}
	seen := bodyWhole
	if cw.over {
		seen = bodyPast
	}
	body := cw.body.Bytes()
	header := cw.sent.as(cw.Header())
	if cw.enforce && !cw.passed {
		header = cw.held()
	}
	found := checkResponse(r, st, cw.status, header, body, seen)
	if len(body) == 0 && (cw.dropped || cw.unheld) && declaresNoContent(st.op, cw.status) {
		// A body none of which was held: sent on (reporting), or dropped.
		found = append(found, noContent(cw.status))
	}
	if cw.enforce && !cw.passed {
		if len(found) > 0 {
			// Nothing of the refused answer leaves: its headers stay
			// behind, only the guard's own (set before the handler ran) go.
			g.refuseAnswer(w)
		} else {
			h := w.Header()
			clear(h)
			for k, v := range header {
				h[k] = v
			}
			w.WriteHeader(cw.status)
			_, _ = w.Write(cw.body.Bytes())
		}
	}
	if len(found) > 0 && g.reportResponse != nil {
		g.reportResponse(r, st.op, found)
	}
}

// reportPanicked reports, reporting, the answer a handler sent (status
// and headers as they went, its body unseen) before it panicked: it went
// to the client all the same. The panic goes on.
func (g *Guard) reportPanicked(r *http.Request, st *opState, status int, h http.Header) {
	if found := checkResponse(r, st, status, h, nil, bodyPast); len(found) > 0 && g.reportResponse != nil {
		g.reportResponse(r, st.op, found)
	}
}

// refuseAnswer answers 500 response-invalid in place of an answer that
// breaks the document.
func (g *Guard) refuseAnswer(w http.ResponseWriter) {
	g.problems.Write(w, &problem.Problem{Type: "response-invalid", Title: "Internal error", Status: http.StatusInternalServerError,
		Detail: "The server's answer did not match the API description."})
}

// informational reports whether status is a 1xx the handler may send
// before its answer (not 101, which ends HTTP).
func informational(status int) bool {
	return status >= 100 && status < 200 && status != http.StatusSwitchingProtocols
}

// statusWriter notes the status a handler answers with.
type statusWriter struct {
	http.ResponseWriter
	status   int
	wrote    bool
	hijacked bool // the handler took the connection
	// checked: the headers the check of the answer reads, by status (see
	// opState), when it is checked; sent: those, as they went.
	checked map[int][]string
	sent    sentHeaders
}

// send notes that the answer's status and headers go now.
func (s *statusWriter) send(status int) {
	if !s.wrote {
		s.wrote, s.status = true, status
		if s.checked != nil {
			s.sent.note(s.checked, status, s.ResponseWriter.Header())
		}
	}
}

func (s *statusWriter) WriteHeader(status int) {
	if !informational(status) {
		s.send(status)
	}
	s.ResponseWriter.WriteHeader(status)
}

func (s *statusWriter) Write(p []byte) (int, error) {
	s.send(http.StatusOK)
	return s.ResponseWriter.Write(p)
}

// Flush sends on what is written so far: a handler that streams through
// w.(http.Flusher) keeps doing so behind the guard.
func (s *statusWriter) Flush() {
	s.send(http.StatusOK)
	_ = http.NewResponseController(s.ResponseWriter).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack hands the connection to the handler (a WebSocket upgrade
// asserting w.(http.Hijacker)) when the writer beneath can.
// One that fails leaves the status to be written: the handler answers
// the failure.
func (s *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	conn, rw, err := http.NewResponseController(s.ResponseWriter).Hijack()
	if err == nil {
		s.wrote, s.hijacked = true, true
	}
	return conn, rw, err
}

// sentHeaders holds, as an answer's headers go, those its check reads:
// Content-Type, Content-Encoding and the headers the document declares
// for its status (the values' slices, not copies). A handler may change
// headers after they went, to no effect (but trailers): the check reads
// them as they went. Copying every header of every answer cost a third of
// a checked request.
type sentHeaders struct {
	noted bool
	names []string
	val   [4][]string
	all   http.Header // a copy of all of them, where more are declared
	// trailers is Trailer as it went: net/http reads it with the status,
	// and a header announced after goes nowhere.
	trailers []string
}

// note notes h as the headers of an answer of status go, checked reading
// the headers of checkedHeaders.
func (s *sentHeaders) note(checked map[int][]string, status int, h http.Header) {
	names, ok := checked[status]
	if !ok {
		names, ok = checked[-(status / 100)] // "2XX"
	}
	if !ok {
		names = checked[0] // the default's, or the media type's alone
	}
	s.noted, s.names, s.all, s.trailers = true, names, nil, h["Trailer"]
	if len(names) > len(s.val) {
		s.all = h.Clone()
		return
	}
	for i, name := range names {
		s.val[i] = h[name]
	}
}

// trailer reports whether announced (the values of Trailer) names name,
// which goes after the body: set after the status, as it must be.
func trailer(announced []string, name string) bool {
	for _, v := range announced {
		for t := range strings.SplitSeq(v, ",") {
			if http.CanonicalHeaderKey(strings.TrimSpace(t)) == name {
				return true
			}
		}
	}
	return false
}

// checkedHeaders are, by status the document declares for op (-N for a
// range NXX, 0 for its default, or for none), the headers the check of an
// answer reads: Content-Type, Content-Encoding and those declared,
// canonical. A status finds its own, then its range's, then the default's,
// as respcheck.Declared does.
func checkedHeaders(op *policy.Operation) map[int][]string {
	out := map[int][]string{0: {"Content-Type", "Content-Encoding"}}
	if op.Spec.Responses == nil {
		return out
	}
	for key, ref := range op.Spec.Responses.Map() {
		code, err := strconv.Atoi(key)
		switch {
		case key == "default":
			code, err = 0, nil
		case len(key) == 3 && key[1:] == "XX" && key[0] >= '1' && key[0] <= '5':
			code, err = -int(key[0]-'0'), nil
		}
		if err != nil || ref == nil || ref.Value == nil {
			continue
		}
		names := []string{"Content-Type", "Content-Encoding"}
		for _, name := range slices.Sorted(maps.Keys(ref.Value.Headers)) {
			names = append(names, http.CanonicalHeaderKey(name))
		}
		out[code] = names
	}
	return out
}

// as returns the headers to check: live, but for those changed since they
// went, as they went.
func (s *sentHeaders) as(live http.Header) http.Header {
	if !s.noted {
		return live // not gone yet: net/http sends them as the handler returns
	}
	if s.all != nil {
		out := s.all
		for name, v := range live {
			if trailer(s.trailers, name) {
				out[name] = v
			}
		}
		return out
	}
	var out http.Header
	for i, name := range s.names {
		now, then := live[name], s.val[i]
		if len(now) == len(then) && (len(now) == 0 || &now[0] == &then[0]) || trailer(s.trailers, name) {
			continue
		}
		if out == nil {
			out = live.Clone()
		}
		if then == nil {
			delete(out, name)
		} else {
			out[name] = then
		}
	}
	if out == nil {
		return live
	}
	return out
}

// checkedWriter keeps what a handler answers: the status, and the body up
// to MaxCheckedBody. Reporting, it passes everything on as it comes;
// enforcing, it holds the answer (headers in a map of its own) until the
// guard has checked it, unless the body grows past the bound or the
// handler flushes, which send it on unchecked.
type checkedWriter struct {
	w       http.ResponseWriter
	enforce bool
	header  http.Header // enforcing: the answer's headers, held
	// late, enforcing: what Header gives the handler once it wrote its
	// status, made then (see held).
	late    http.Header
	status  int
	wrote   bool
	checked map[int][]string // see statusWriter
	sent    sentHeaders      // reporting: what the check reads, as it went
	body    bytes.Buffer
	over    bool // the body passed MaxCheckedBody (or was flushed): not checked
	unheld  bool // body bytes went on without being kept (past MaxCheckedBody, or let go)
	// passed: enforcing, the answer went out unheld (too large, or
	// flushed).
	passed bool
	// refuse, enforcing, checks the status and headers of an answer sent
	// on before its end (and that body is coming, where its status
	// declares none), and answers in its place when they break the
	// document (refused); refused: it did, and the rest is dropped.
	refuse  func(status int, h http.Header, body bool) (refused, bodyless bool)
	refused bool
	// bodyless: enforcing, the answer went out before its end with a
	// status that declares no content: a body written after is dropped
	// (dropped), and reported.
	bodyless, dropped bool
	hijacked          bool // reporting: the handler took the connection
}

func (c *checkedWriter) Header() http.Header {
	if c.enforce && !c.passed {
		if c.wrote {
			// Set after the status: kept apart (see held).
			if c.late == nil {
				c.late = c.header.Clone()
			}
			return c.late
		}
		return c.header
	}
	return c.w.Header()
}

func (c *checkedWriter) WriteHeader(status int) {
	if c.wrote {
		return
	}
	if informational(status) {
		// Sent at once (103 Early Hints): not the answer. Enforcing, the
		// headers the handler set for it are held: they go with it.
		if c.enforce && !c.passed {
			h := c.w.Header()
			own := h.Clone()
			clear(h)
			maps.Copy(h, c.header)
			c.w.WriteHeader(status)
			clear(h)
			maps.Copy(h, own)
			return
		}
		c.w.WriteHeader(status)
		return
	}
	c.wrote, c.status = true, status
	if !c.enforce {
		// What is set after goes nowhere (but trailers): the check reads
		// what went.
		c.sent.note(c.checked, status, c.w.Header())
		c.w.WriteHeader(status)
	}
}

func (c *checkedWriter) Write(p []byte) (int, error) {
	if c.refused {
		return len(p), nil
	}
	if c.passed && c.bodyless {
		c.dropped = c.dropped || len(p) > 0
		return len(p), nil
	}
	if !c.wrote {
		c.WriteHeader(http.StatusOK)
	}
	if !c.over && c.body.Len()+len(p) <= MaxCheckedBody {
		c.body.Write(p)
		if c.enforce && !c.passed {
			return len(p), nil
		}
	} else if !c.over {
		c.over, c.unheld = true, true
		if c.enforce && !c.passed {
			if c.pass(len(p) > 0); c.refused {
				return len(p), nil
			}
		}
		c.release()
	}
	c.unheld = c.unheld || len(p) > 0 && c.over
	return c.w.Write(p)
}

// held are the answer's headers as they go, enforcing: as the handler had
// them when it wrote its status, and the trailers it announced then. What
// it sets after goes nowhere, as net/http sends nothing of it, and as the
// guard reporting or off sends nothing of it: a header set late was sent,
// and checked, only when enforcing.
func (c *checkedWriter) held() http.Header {
	for k, v := range c.late {
		if trailer(c.header["Trailer"], k) || strings.HasPrefix(k, http.TrailerPrefix) {
			c.header[k] = v
		}
	}
	return c.header
}

// release lets go of the body held, once it will not be checked: a
// download or a stream kept open must not keep its first MiB.
func (c *checkedWriter) release() {
	c.unheld = c.unheld || c.body.Len() > 0
	c.body = bytes.Buffer{}
}

// pass sends what is held on, and everything after as it comes, once its
// status and headers are checked: when they break the document the guard
// answers instead, and nothing of the answer leaves. more says a body is
// being written beside what is held.
func (c *checkedWriter) pass(more bool) {
	if c.refuse != nil {
		if c.refused, c.bodyless = c.refuse(c.status, c.held(), more || c.body.Len() > 0); c.refused {
			return
		}
	}
	c.passed = true
	h := c.w.Header()
	clear(h)
	for k, v := range c.held() {
		h[k] = v
	}
	c.sent.note(c.checked, c.status, h) // reported as it went
	c.w.WriteHeader(c.status)
	_, _ = c.w.Write(c.body.Bytes())
}

// Flush sends on what is written so far: a streamed answer is checked
// when reported, and sent unchecked when enforced.
func (c *checkedWriter) Flush() {
	if c.refused {
		return
	}
	if !c.wrote {
		// A flush sends the header: the status is 200 from here on,
		// whatever the handler says next.
		c.WriteHeader(http.StatusOK)
	}
	if c.enforce && !c.passed {
		c.over = true // a stream: not held, its body not checked
		if c.pass(false); c.refused {
			return
		}
		c.release()
	}
	if !c.enforce && !c.over && !respcheck.Readable(c.w.Header()) {
		// A stream whose bytes cannot be checked (an event stream, a
		// compressed body): not kept while it stays open.
		c.over = true
		c.release()
	}
	_ = http.NewResponseController(c.w).Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (c *checkedWriter) Unwrap() http.ResponseWriter { return c.w }

// Hijack hands the connection to the handler when reporting. Enforcing,
// it refuses: what the handler would write on the connection could not
// be checked.
func (c *checkedWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	if c.enforce {
		return nil, nil, fmt.Errorf("guard: %w: enforced response validation holds every answer", http.ErrNotSupported)
	}
	conn, rw, err := http.NewResponseController(c.w).Hijack()
	c.hijacked = err == nil
	return conn, rw, err
}

// bodySeen is how much of an answer's body checkResponse has.
type bodySeen int

const (
	bodyWhole  bodySeen = iota // all of it
	bodyPast                   // none: it was sent on (past the bound, or flushed)
	bodyUnseen                 // none: not sampled; it may be empty
)

// bodyAllowed reports whether an answer of status may have a body (RFC
// 9110 6.4.1: not 1xx, 204 or 304).
func bodyAllowed(status int) bool {
	return status >= 200 && status != http.StatusNoContent && status != http.StatusNotModified
}

// declaresNoContent reports whether op's answer of status has no body by
// the document (it declares the status, or a default, without content).
func declaresNoContent(op *policy.Operation, status int) bool {
	declared := respcheck.Declared(op.Spec, status)
	return declared != nil && len(declared.Content) == 0
}

func noContent(status int) ResponseViolation {
	return ResponseViolation{Status: status, Reason: "body", Pointer: "/", Detail: respcheck.NoContent}
}

// checkResponse says how an answer of st's operation breaks the document:
// its status, the headers it requires, its media type, the body (when
// seen whole).
func checkResponse(r *http.Request, st *opState, status int, header http.Header, body []byte, seen bodySeen) []ResponseViolation {
	op := st.op
	declared := respcheck.Declared(op.Spec, status)
	if declared == nil {
		return []ResponseViolation{{Status: status, Reason: "status", Detail: "the document declares neither this status nor a default"}}
	}
	var out []ResponseViolation
	// What openapi3filter does not look at: a body where the status
	// declares none, and the media type of a redirect or of a body sent on
	// unchecked (without one, the server would guess it from the bytes).
	ct := header.Get("Content-Type")
	content := declared.Content
	switch {
	case len(content) == 0:
		if len(body) > 0 {
			out = append(out, noContent(status))
		}
	case seen == bodyPast && ct == "":
		out = append(out, ResponseViolation{Status: status, Reason: "content-type", Detail: "no media type given; this status declares its media types"})
	case ct != "" && (seen != bodyWhole || status >= 300 && status < 400) && content.Get(ct) == nil:
		out = append(out, ResponseViolation{Status: status, Reason: "content-type", Detail: "a media type this status does not declare"})
	}
	if cl := header.Get("Content-Length"); cl != "" && seen == bodyWhole && r.Method != http.MethodHead && bodyAllowed(status) {
		// Held, the body checked would not be the body that goes: net/http
		// refuses the bytes past a length, and sends a shorter body short.
		if n, err := strconv.ParseInt(cl, 10, 64); err != nil || n != int64(len(body)) {
			out = append(out, ResponseViolation{Status: status, Reason: "header", Detail: fmt.Sprintf("Content-Length is %s, but the body is %d bytes", cl, len(body))})
		}
	}
	var found []respcheck.Finding
	if seen == bodyWhole && len(out) == 0 {
		found = respcheck.Check(r.Context(), r, st.valid.route, status, header, body)
	} else {
		// The body unseen, or wrong already: its headers still count,
		// their values too.
		found = respcheck.Headers(r.Context(), r, st.valid.route, status, header)
	}
	for _, f := range found {
		out = append(out, ResponseViolation{Status: status, Reason: f.Reason, Pointer: f.Pointer, Detail: f.Detail})
	}
	return out
}
