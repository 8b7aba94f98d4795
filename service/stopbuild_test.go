package service_test

import (
	"context"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/service"
)

// A SIGTERM "that comes while it starts stops it before it serves, with
// exit status 0" (README). One that came while the handler was built (the
// guard, the app's routes, which look at no context) was not seen until
// serve: the service bound, logged "listening", and served on for
// SPECGUARD_SHUTDOWN_DELAY before it stopped (helper-175).
func TestStopWhileBuildingTheHandlerServesNothing(t *testing.T) {
	env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADDR": "127.0.0.1:0", "SPECGUARD_ADMIN_ADDR": "off", "SPECGUARD_SHUTDOWN_DELAY": "2s"}
	ctx, cancel := context.WithCancel(context.Background())
	app := testApp()
	routes := app.Routes
	app.Routes = func(r chi.Router, d *service.Deps) error {
		cancel() // SIGTERM while the handler is being built
		return routes(r, d)
	}
	var stdout, stderr syncBuffer
	if err := service.Run(ctx, app, nil, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if strings.Contains(stdout.String(), `"msg":"listening"`) || !strings.Contains(stderr.String(), "stopped while starting, before serving") {
		t.Errorf("stopped while starting, yet it listened; stderr %q; log:\n%s", stderr.String(), stdout.String())
	}
}
