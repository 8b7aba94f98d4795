package server_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/specguard/specguard/server"
	"github.com/specguard/specguard/service"
)

// api/openapi.yaml edited and `make generate` not run: the service says
// so instead of failing on a stale route table.
func TestEditedSpecAsksForGenerate(t *testing.T) {
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADMIN_ADDR": "off"}
	build := func(app service.App) error {
		srv, err := service.Build(context.Background(), app, nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
		if err == nil {
			srv.Close()
		}
		return err
	}
	app := server.Service()
	if err := build(app); err != nil {
		t.Fatalf("the committed document: %v", err)
	}
	app.Spec = append([]byte(strings.Clone(string(app.Spec))), "# edited\n"...)
	if err := build(app); err == nil || !strings.Contains(err.Error(), "run `make generate`") {
		t.Fatalf("an edited document: %v, want a request to run make generate", err)
	}
}
