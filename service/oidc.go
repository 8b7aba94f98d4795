package service

// Outside identity providers: the document's openIdConnect schemes, with
// the SPECGUARD_OIDC_* settings.

import (
	"context"
	"log/slog"
	"net/http"
	"time"

	"go.opentelemetry.io/otel/trace"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security/oidc"
)

// newOIDC starts verifying the tokens of table's openIdConnect schemes. A
// provider that cannot be reached holds up nothing: serve starts, /readyz
// stays ready (one provider down must not take the fleet out of the load
// balancer), and a log line and the specguard_oidc_provider_* series say
// so.
func newOIDC(ctx context.Context, cfg *Config, table *policy.Table, m *Metrics, log *slog.Logger, now func() time.Time, tp trace.TracerProvider) (*oidc.Authenticator, error) {
	opts := []oidc.Option{
		oidc.WithLeeway(cfg.OIDCLeeway),
		oidc.WithIntrospectionTTL(cfg.OIDCCacheTTL),
		oidc.WithClock(now),
		oidc.WithStatus(func(st oidc.Status) {
			if m != nil {
				m.providerStatus(st)
			}
			switch {
			case !st.Changed:
			case st.Err != nil:
				log.Warn("identity provider unreachable: JWTs are checked with the keys already fetched, opaque tokens answered 503",
					"scheme", st.Scheme, "keys_loaded", st.Ready, "err", st.Err)
			default:
				log.Info("identity provider reachable", "scheme", st.Scheme)
			}
		}),
	}
	if tp != nil {
		// Discovery, keys and introspection: client spans.
		opts = append(opts, oidc.WithHTTPClient(&http.Client{Transport: tracedTransport{next: http.DefaultTransport, tracer: tp.Tracer("github.com/specguard/specguard/service")}}))
	}
	for name, set := range cfg.OIDC {
		opts = append(opts, oidc.WithSettings(name, set))
	}
	// Its background work (key refresh, the first load's retries) ends
	// with Close, not with ctx: a stop with SPECGUARD_SHUTDOWN_DELAY cancels
	// ctx and serves on for the delay.
	return oidc.New(context.WithoutCancel(ctx), table, opts...)
}
