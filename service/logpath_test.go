package service_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/specguard/specguard/service"
)

// A request for no operation is answered 404 before any rate limit, and
// its log line quotes its path: cut to 512 bytes, so that one client
// cannot write the log at several times the rate it sends (an invalid
// byte, %ff, is logged as six).
func TestLoggedPathIsBounded(t *testing.T) {
	var logs syncBuffer
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADMIN_ADDR": "off", "SPECGUARD_LOG_REQUESTS": "true"}
	s, err := service.Build(context.Background(), testApp(), nil, func(k string) string { return env[k] }, &logs, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	srv := httptest.NewServer(s.Handler)
	defer srv.Close()
	path := "/" + strings.Repeat("%ff", 4000) // 12 KiB sent, 4,000 bytes decoded
	resp, err := http.Get(srv.URL + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Fatalf("GET of a long unknown path: %d", resp.StatusCode)
	}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var line struct {
			Msg, Path string
			Status    int
		}
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Status != http.StatusNotFound {
			continue
		}
		if len(sc.Bytes()) > 4<<10 || !strings.HasSuffix(line.Path, "...(4001 bytes)") {
			t.Errorf("the 404's log line: %d bytes, path ending %q; want under 4 KiB, the path cut and its length said", len(sc.Bytes()), line.Path[max(0, len(line.Path)-20):])
		}
		return
	}
	t.Fatalf("no log line for the 404:\n%.2000s", logs.String())
}
