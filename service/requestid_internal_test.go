package service

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

// A line logged with a request's context gets its id, first after the
// message, once (not when the line names one), through loggers derived
// with With; a line without a request's context gets none.
func TestRequestIDsInLogLines(t *testing.T) {
	var b bytes.Buffer
	log := slog.New(requestIDs{slog.NewJSONHandler(&b, nil)})
	ctx := &idContext{Context: context.Background(), id: "0123456789abcdef"}
	log.WarnContext(ctx, "a store is unavailable", "err", "down")
	log.With("component", "credentials").ErrorContext(ctx, "failed")
	log.InfoContext(ctx, "named", "request_id", "mine")
	log.Info("at start")
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	want := []string{
		`"msg":"a store is unavailable","request_id":"0123456789abcdef","err":"down"}`,
		`"msg":"failed","component":"credentials","request_id":"0123456789abcdef"}`,
		`"msg":"named","request_id":"mine"}`,
		`"msg":"at start"}`,
	}
	if len(lines) != len(want) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(want), b.String())
	}
	for i, w := range want {
		if !strings.HasSuffix(lines[i], w) {
			t.Errorf("line %d: %s\nwant it to end %s", i+1, lines[i], w)
		}
	}
}
