package credentials_test

import (
	"io"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// countingBody is a form body of n bytes that counts what is read of it.
type countingBody struct {
	n, read int64
	total   *atomic.Int64
}

func (c *countingBody) Read(p []byte) (int, error) {
	if c.read >= c.n {
		return 0, io.EOF
	}
	k := min(int64(len(p)), c.n-c.read)
	for i := range p[:k] {
		p[i] = 'a'
	}
	c.read += k
	c.total.Add(k)
	return int(k), nil
}

// A token request whose Content-Length is over the guard's 1 MiB cap is
// refused before the handler, and nothing of its body is read: the
// token endpoint's problem writer parsed the form, 10 MB of it, for
// anyone (helper-191, on the guard's first version of the refusal).
func TestTokenBodyOverTheCapNotRead(t *testing.T) {
	e := onBackend(t, backends[0])
	var read atomic.Int64
	const size = 8 << 20
	prefix := "grant_type=password&username=a%40example.com&password=x&pad="
	req := httptest.NewRequest("POST", "/auth/token", io.MultiReader(strings.NewReader(prefix), &countingBody{n: size, total: &read}))
	req.ContentLength = int64(len(prefix)) + size
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	w := httptest.NewRecorder()
	e.h.ServeHTTP(w, req)
	if n := read.Load(); w.Code != 400 || n > 0 {
		t.Errorf("a body of %d bytes: %d %s, %d bytes of it read; want 400 (the token endpoint's invalid_request) and none read",
			req.ContentLength, w.Code, strings.TrimSpace(w.Body.String()), n)
	}
}
