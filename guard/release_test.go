package guard

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// An answer whose body will not be checked lets go of what it held: a
// stream of a media type that cannot be read (an event stream), once
// flushed, and any answer past MaxCheckedBody, reported or enforced. An
// answer kept open (server-sent events to thousands of clients) held its
// first MiB.
func TestUncheckedBodiesAreNotHeld(t *testing.T) {
	chunk := strings.Repeat("x", 64<<10)
	for _, c := range []struct {
		name    string
		enforce bool
		ct      string
		flush   bool
		bytes   int
	}{
		{"reported event stream, flushed", false, "text/event-stream", true, len(chunk)},
		{"reported JSON past the bound", false, "application/json", false, MaxCheckedBody + len(chunk)},
		{"enforced stream, flushed", true, "text/event-stream", true, len(chunk)},
		{"enforced download past the bound", true, "application/octet-stream", false, MaxCheckedBody + len(chunk)},
	} {
		rec := httptest.NewRecorder()
		cw := &checkedWriter{w: rec, enforce: c.enforce}
		if c.enforce {
			cw.header = http.Header{}
		}
		cw.Header().Set("Content-Type", c.ct)
		for written := 0; written < c.bytes; written += len(chunk) {
			cw.Write([]byte(chunk))
			if c.flush {
				cw.Flush()
			}
		}
		if cw.body.Cap() != 0 || !cw.over {
			t.Errorf("%s: %d bytes still held (over %v)", c.name, cw.body.Cap(), cw.over)
		}
		if rec.Body.Len() != c.bytes {
			t.Errorf("%s: the client got %d bytes of %d", c.name, rec.Body.Len(), c.bytes)
		}
	}
}
