package service

import (
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/guard"
	"github.com/specguard/specguard/internal/speccli"
	"github.com/specguard/specguard/internal/text"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security/oidc"
	"github.com/specguard/specguard/security/sessions"
)

// Config is everything `NAME serve` reads from SPECGUARD_* variables;
// a flag of the same name (without the prefix, lower case, dashes) overrides
// its variable.
type Config struct {
	Addr           string        // SPECGUARD_ADDR
	RedisURL       string        // SPECGUARD_REDIS_URL; empty = in-memory stores
	DatabaseURL    string        // SPECGUARD_DATABASE_URL; empty = SQLite in DataDir
	DatabasePool   int           // SPECGUARD_DATABASE_POOL_SIZE
	SigningKeyFile string        // SPECGUARD_SIGNING_KEY_FILE; empty = a dev key in DataDir
	VerifyKeyFiles []string      // SPECGUARD_VERIFY_KEY_FILES; comma-separated
	DataDir        string        // SPECGUARD_DATA_DIR
	UsersFile      string        // SPECGUARD_USERS_FILE; empty = demo users
	TrustedProxies []string      // SPECGUARD_TRUSTED_PROXIES; comma-separated CIDRs
	ClientIPHeader string        // SPECGUARD_CLIENT_IP_HEADER: the one header trusted proxies write
	IPv6Prefix     int           // SPECGUARD_IPV6_PREFIX: bits of an IPv6 address a per-IP limit counts by
	Issuer         string        // SPECGUARD_ISSUER
	AccessTTL      time.Duration // SPECGUARD_ACCESS_TTL
	RefreshTTL     time.Duration // SPECGUARD_REFRESH_TTL
	SessionTTL     time.Duration // SPECGUARD_SESSION_TTL
	SessionIdle    time.Duration // SPECGUARD_SESSION_IDLE
	MaxSessions    int           // SPECGUARD_MAX_SESSIONS: live logins, and browser sessions, per account
	MaxAPIKeys     int           // SPECGUARD_MAX_API_KEYS: live API keys per account
	// SPECGUARD_FAILED_LOGINS_PER_IP, _PER_ACCOUNT: failed password checks
	// allowed per client address and per account.
	FailedLoginsPerIP, FailedLoginsPerAccount credentials.Budget
	StoreTimeout                              time.Duration // SPECGUARD_STORE_TIMEOUT
	OIDCLeeway                                time.Duration // SPECGUARD_OIDC_LEEWAY
	OIDCCacheTTL                              time.Duration // SPECGUARD_OIDC_CACHE_TTL
	// OIDC are the SPECGUARD_OIDC_<NAME>_* settings of the document's
	// openIdConnect schemes, by scheme name (see OIDCSettings).
	OIDC            map[string]oidc.Settings
	AllowedOrigins  []string      // SPECGUARD_ALLOWED_ORIGINS; comma-separated
	ShutdownTimeout time.Duration // SPECGUARD_SHUTDOWN_TIMEOUT
	ShutdownDelay   time.Duration // SPECGUARD_SHUTDOWN_DELAY
	LogFormat       string        // SPECGUARD_LOG_FORMAT: json or text
	LogRequests     bool          // SPECGUARD_LOG_REQUESTS: one line per request
	AdminAddr       string        // SPECGUARD_ADMIN_ADDR: /metrics; "auto" = 127.0.0.1:<API port + 1000>; "off" = none
	AdminPprof      bool          // SPECGUARD_ADMIN_PPROF: /debug/pprof/ on the admin listener
	SpecFile        string        // SPECGUARD_SPEC_FILE: serve this document instead of the embedded one
	// ValidateResponses is SPECGUARD_VALIDATE_RESPONSES: whether the
	// handlers' answers are checked against the document (off, report,
	// enforce).
	ValidateResponses guard.ResponseMode
	// ResponseSample is SPECGUARD_VALIDATE_RESPONSES_SAMPLE: report mode
	// checks the body of one answer in this many.
	ResponseSample int
	// Tracer traces requests and the calls they make (the OTEL_*
	// variables); nil when they name no endpoint.
	Tracer *sdktrace.TracerProvider
}

type setting struct {
	name  string // flag name; the variable is SPECGUARD_ + upper(name with _)
	usage string
	def   string
	set   func(c *Config, v string) error
}

// bare refuses a setting's value with blanks or quotes around it, which
// would be part of it: docker run --env-file keeps an env file's quotes,
// and SPECGUARD_DATA_DIR="/data" was a relative directory named "/data"
// (quotes and all), off the volume. It never repeats the value: a URL may
// hold a password.
func bare(v string) error {
	if v != strings.TrimSpace(v) {
		return errors.New("the value has blanks around it; give the value alone")
	}
	if len(v) >= 2 && (v[0] == '"' || v[0] == '\'') && v[len(v)-1] == v[0] {
		return errors.New("the value is in quotes (an env file's quotes are kept as they are); give the value alone")
	}
	return nil
}

func str(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error { *dst(c) = v; return nil }
}

// nonEmpty is str for a setting that has a default and no meaning empty:
// an empty flag (--addr=) would otherwise replace a safe default with
// none (every interface, the working directory).
func nonEmpty(dst func(*Config) *string) func(*Config, string) error {
	return func(c *Config, v string) error {
		if v == "" {
			return errors.New("must not be empty; leave it out for the default")
		}
		*dst(c) = v
		return nil
	}
}

func list(dst func(*Config) *[]string) func(*Config, string) error {
	return func(c *Config, v string) error {
		var out []string
		for _, s := range strings.Split(v, ",") {
			if s = strings.TrimSpace(s); s != "" {
				out = append(out, s)
			}
		}
		if out == nil && strings.TrimSpace(v) != "" {
			// Separators alone: a value that lost its items (a template
			// that filled in nothing), not a choice of none.
			return fmt.Errorf("%q lists nothing; leave it empty for none", v)
		}
		*dst(c) = out
		return nil
	}
}

func budget(dst func(*Config) *credentials.Budget) func(*Config, string) error {
	return func(c *Config, v string) error {
		b, err := credentials.ParseBudget(v)
		if err != nil {
			return err
		}
		*dst(c) = b
		return nil
	}
}

func count(dst func(*Config) *int) func(*Config, string) error {
	return func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 100000 {
			return fmt.Errorf("%q is not a number from 1 to 100000", v)
		}
		*dst(c) = n
		return nil
	}
}

func dur(dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return fmt.Errorf("%q is not a positive duration such as 15m", v)
		}
		*dst(c) = d
		return nil
	}
}

// lifetime is dur for a credential's lifetime: at least a second, as a
// token's times and a cookie's Max-Age are whole seconds (a token of 1ns
// expires as it is issued, and no credential would ever work).
func lifetime(dst func(*Config) *time.Duration) func(*Config, string) error {
	return func(c *Config, v string) error {
		if err := dur(dst)(c, v); err != nil {
			return err
		}
		if d := *dst(c); d < time.Second {
			return fmt.Errorf("%q is shorter than a second: a credential's times are whole seconds, and it would end as it is issued", v)
		}
		return nil
	}
}

var settings = []setting{
	{"addr", "listen address", "127.0.0.1:8080", nonEmpty(func(c *Config) *string { return &c.Addr })},
	{"redis-url", "Redis URL (redis://, rediss://, or redis+cluster://host:port,host:port); empty = in-memory", "", str(func(c *Config) *string { return &c.RedisURL })},
	{"database-url", "where accounts, API keys and the app's records live: sqlite:PATH, postgres://... or postgresql://...; empty = sqlite in the data dir", "", str(func(c *Config) *string { return &c.DatabaseURL })},
	{"database-pool-size", "most connections to PostgreSQL (and SQLite readers)", "10", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000 {
			return fmt.Errorf("%q is not a number of connections from 1 to 1000", v)
		}
		c.DatabasePool = n
		return nil
	}},
	{"signing-key-file", "PEM private key (PKCS#8) that signs tokens; empty = a dev Ed25519 key in the data dir (only without a shared store)", "", str(func(c *Config) *string { return &c.SigningKeyFile })},
	{"verify-key-files", "comma-separated PEM keys that still verify tokens after a rotation", "", list(func(c *Config) *[]string { return &c.VerifyKeyFiles })},
	{"data-dir", "directory for the SQLite database and the dev signing key", ".specguard", nonEmpty(func(c *Config) *string { return &c.DataDir })},
	{"users-file", "YAML list of {email, password | password_hash, role} to seed (mode 0600); empty = demo users in the development setup (SQLite without Redis, on a loopback address, no trusted proxy), none elsewhere", "", str(func(c *Config) *string { return &c.UsersFile })},
	{"trusted-proxies", "comma-separated CIDRs of the proxies whose client IP header is believed", "", list(func(c *Config) *[]string { return &c.TrustedProxies })},
	{"client-ip-header", "the one header the trusted proxies write: X-Forwarded-For or Forwarded (read right to left), or a single-address header such as X-Real-IP", "X-Forwarded-For", func(c *Config, v string) error {
		v = strings.TrimSpace(v)
		if v == "" || strings.ContainsAny(v, " :\t,") {
			return fmt.Errorf("%q is not a header name", v)
		}
		c.ClientIPHeader = v
		return nil
	}},
	{"ipv6-prefix", "leading bits of an IPv6 client address that per-IP limits count by (64: one bucket per /64)", "64", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 16 || n > 128 {
			return fmt.Errorf("%q is not a prefix length from 16 to 128", v)
		}
		c.IPv6Prefix = n
		return nil
	}},
	{"issuer", "iss and aud of the tokens", "specguard", nonEmpty(func(c *Config) *string { return &c.Issuer })},
	{"access-ttl", "access token lifetime", "15m", lifetime(func(c *Config) *time.Duration { return &c.AccessTTL })},
	{"refresh-ttl", "refresh token lifetime (absolute)", "720h", lifetime(func(c *Config) *time.Duration { return &c.RefreshTTL })},
	{"session-ttl", "browser session lifetime", "12h", lifetime(func(c *Config) *time.Duration { return &c.SessionTTL })},
	{"session-idle", "a browser session unused this long ends; 0: only its lifetime ends it", "1h", func(c *Config, v string) error {
		if d, err := time.ParseDuration(v); v == "0" || err == nil && d == 0 {
			c.SessionIdle = 0 // "0s" too
			return nil
		}
		if err := lifetime(func(c *Config) *time.Duration { return &c.SessionIdle })(c, v); err != nil {
			return fmt.Errorf("%q is neither 0 (off) nor a duration of at least 1s such as 30m", v)
		}
		return nil
	}},
	{"max-sessions", "most live logins (token families) of one account, and most browser sessions; the next login answers 409", "100", count(func(c *Config) *int { return &c.MaxSessions })},
	{"max-api-keys", "most live API keys of one account; the next one answers 409", "50", count(func(c *Config) *int { return &c.MaxAPIKeys })},
	{"failed-logins-per-ip", "failed password checks allowed per client address, across login, browser session and the password grant", "5/15m", budget(func(c *Config) *credentials.Budget { return &c.FailedLoginsPerIP })},
	{"failed-logins-per-account", "failed password checks allowed per account, whatever the address (see the README on lock-out)", "10/15m", budget(func(c *Config) *credentials.Budget { return &c.FailedLoginsPerAccount })},
	{"store-timeout", "timeout of every store call (1ms to 1m)", "100ms", func(c *Config, v string) error {
		// Below a millisecond no call could finish: a server that answers
		// 503 to everything once started (100us meant as 100ms). Above a
		// minute a hung store holds every request that long.
		if err := dur(func(c *Config) *time.Duration { return &c.StoreTimeout })(c, v); err != nil || c.StoreTimeout < time.Millisecond || c.StoreTimeout > time.Minute {
			return fmt.Errorf("%q is not a duration from 1ms to 1m", v)
		}
		return nil
	}},
	{"allowed-origins", "comma-separated origins (scheme://host[:port]) allowed to send cookie-authenticated writes; empty = same host", "", func(c *Config, v string) error {
		if err := list(func(c *Config) *[]string { return &c.AllowedOrigins })(c, v); err != nil {
			return err
		}
		for _, o := range c.AllowedOrigins {
			if err := sessions.CheckOrigin(o); err != nil {
				return err
			}
		}
		return nil
	}},
	{"oidc-leeway", "clock skew allowed on the exp, nbf and iat of tokens from identity providers (at most 5m)", "60s", func(c *Config, v string) error {
		if err := dur(func(c *Config) *time.Duration { return &c.OIDCLeeway })(c, v); err != nil || c.OIDCLeeway > oidc.MaxLeeway {
			return fmt.Errorf("%q is not a positive duration up to %s", v, oidc.MaxLeeway)
		}
		return nil
	}},
	{"oidc-cache-ttl", "longest an introspected token is trusted without asking its provider again: a token revoked there is refused within it", "60s", dur(func(c *Config) *time.Duration { return &c.OIDCCacheTTL })},
	{"shutdown-timeout", "how long SIGTERM waits for in-flight requests", "10s", dur(func(c *Config) *time.Duration { return &c.ShutdownTimeout })},
	{"shutdown-delay", "how long, after SIGTERM, the server goes on serving while /readyz answers 503 (for a load balancer to stop sending it requests), before it stops taking new ones; 0 = none", "0s", func(c *Config, v string) error {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > 5*time.Minute {
			return fmt.Errorf("%q is not a duration from 0s to 5m", v)
		}
		c.ShutdownDelay = d
		return nil
	}},
	{"admin-addr", "listen address of /metrics (keep it private); auto = 127.0.0.1 and the API's port + 1000; off = none", "auto", func(c *Config, v string) error {
		if v != "off" && v != "auto" {
			if _, _, err := net.SplitHostPort(v); err != nil {
				return fmt.Errorf("%q is not host:port, auto or off", v)
			}
		}
		c.AdminAddr = v
		return nil
	}},
	{"admin-pprof", "also serve /debug/pprof/ on the admin listener: true or false", "false", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		c.AdminPprof = b
		return nil
	}},
	{"log-requests", "log one line per request: true or false", "true", func(c *Config, v string) error {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return fmt.Errorf("%q is not true or false", v)
		}
		c.LogRequests = b
		return nil
	}},
	{"validate-responses", "check the handlers' answers against the document: off, report (count and log what breaks it) or enforce (answer 500 instead)", "report", func(c *Config, v string) error {
		m, err := guard.ParseResponseMode(v)
		c.ValidateResponses = m
		return err
	}},
	{"validate-responses-sample", "report mode checks the body of one answer in this many (every answer's status and headers are checked; enforce checks every body)", "4", func(c *Config, v string) error {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1000000 {
			return fmt.Errorf("%q is not a number from 1 (every answer) to 1000000", v)
		}
		c.ResponseSample = n
		return nil
	}},
	{"spec-file", "OpenAPI document to enforce instead of the embedded one (same operations; to tune x-rate-limit or security without a rebuild)", "", str(func(c *Config) *string { return &c.SpecFile })},
	{"log-format", "json or text", "json", func(c *Config, v string) error {
		if v != "json" && v != "text" {
			return fmt.Errorf("%q is not json or text", v)
		}
		c.LogFormat = v
		return nil
	}},
}

// checkEnviron refuses SPECGUARD_* variables that are no setting, so that a
// misspelled one (SPECGUARD_REDIS= for SPECGUARD_REDIS_URL) cannot leave
// the server running on defaults. environ is os.Environ(); the variables
// of the test and load tools (SPECGUARD_TEST_*, SPECGUARD_BENCH_*) pass.
func checkEnviron(name string, environ []string) error {
	known := make([]string, len(settings))
	for i, s := range settings {
		known[i] = envName(s.name)
	}
	var bad []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(name, "SPECGUARD_") || slices.Contains(known, name) || oidcVar.MatchString(name) ||
			strings.HasPrefix(name, "SPECGUARD_TEST_") || strings.HasPrefix(name, "SPECGUARD_BENCH_") {
			continue
		}
		msg := name + " is not a setting"
		if near := suggestSetting(name, known); near != "" {
			msg += " (did you mean " + near + "?)"
		}
		bad = append(bad, msg)
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return fmt.Errorf("%s; `%s serve --help` lists every SPECGUARD_* variable", strings.Join(bad, "; "), name)
	}
	return nil
}

// oidcVar matches the per-scheme settings of openIdConnect schemes,
// SPECGUARD_OIDC_<NAME>_URL, _CLIENT_ID and _CLIENT_SECRET.
var oidcVar = regexp.MustCompile(`^SPECGUARD_OIDC_[A-Z0-9_]+_(URL|CLIENT_ID|CLIENT_SECRET)$`)

// OIDCSettings reads the SPECGUARD_OIDC_<NAME>_* variables of every
// openIdConnect scheme of table (<NAME> is oidcEnvName's), and checks
// them, naming the variable. Two schemes whose names give the same <NAME>
// ("key-cloak" and "key.cloak") would read each other's settings: that
// is an error naming both.
func OIDCSettings(table *policy.Table, getenv func(string) string) (map[string]oidc.Settings, error) {
	out := map[string]oidc.Settings{}
	// Every scheme declared, used or not: one that an edit puts to use
	// would read the other's settings.
	owner := map[string]string{}
	for _, scheme := range declaredOIDC(table) {
		name := oidcEnvName(scheme)
		if other, taken := owner[name]; taken {
			return nil, fmt.Errorf("%s: the openIdConnect schemes %s and %s would both read SPECGUARD_OIDC_%s_*; rename one", table.Source, other, scheme, name)
		}
		owner[name] = scheme
	}
	for _, s := range table.Providers() {
		name := oidcEnvName(s.Name)
		set, err := oidcSettings(name, getenv)
		if err != nil {
			return nil, err
		}
		if set != (oidc.Settings{}) {
			out[s.Name] = set
		}
		if set.ClientID != "" {
			if err := table.CheckIntrospectionLimited(s.Name); err != nil {
				return nil, fmt.Errorf("SPECGUARD_OIDC_%s_CLIENT_ID: %w", name, err)
			}
		}
	}
	// A scheme no operation uses yet is not enforced, but what is set for
	// it is checked the same: it would be taken as it is once one does.
	for _, scheme := range declaredOIDC(table) {
		if table.Schemes[scheme] != nil {
			continue
		}
		if _, err := oidcSettings(oidcEnvName(scheme), getenv); err != nil {
			return nil, err
		}
	}
	urls := map[string]string{}
	for name, set := range out {
		urls[name] = set.URL
	}
	if err := table.CheckProviderURLs(urls); err != nil {
		return nil, fmt.Errorf("SPECGUARD_OIDC_<NAME>_URL: %w", err)
	}
	return out, nil
}

// declaredOIDC names every openIdConnect scheme the document declares,
// used by an operation or not yet, in order.
func declaredOIDC(table *policy.Table) []string {
	var out []string
	if table.Doc.Components != nil {
		for name, ref := range table.Doc.Components.SecuritySchemes {
			if ref != nil && ref.Value != nil && ref.Value.Type == "openIdConnect" {
				out = append(out, name)
			}
		}
	}
	slices.Sort(out)
	return out
}

// oidcSettings reads and checks the SPECGUARD_OIDC_<name>_* variables.
func oidcSettings(name string, getenv func(string) string) (oidc.Settings, error) {
	prefix := "SPECGUARD_OIDC_" + name + "_"
	set := oidc.Settings{URL: getenv(prefix + "URL"), ClientID: getenv(prefix + "CLIENT_ID"), ClientSecret: getenv(prefix + "CLIENT_SECRET")}
	for _, v := range [][2]string{{"URL", set.URL}, {"CLIENT_ID", set.ClientID}, {"CLIENT_SECRET", set.ClientSecret}} {
		if err := bare(v[1]); err != nil {
			return set, fmt.Errorf("%s%s: %v", prefix, v[0], err)
		}
	}
	if set.URL != "" {
		if err := policy.ValidProviderURL(set.URL); err != nil {
			return set, fmt.Errorf("%sURL: %v", prefix, err)
		}
	}
	if (set.ClientID == "") != (set.ClientSecret == "") {
		return set, fmt.Errorf("%sCLIENT_ID and %sCLIENT_SECRET: give both or neither", prefix, prefix)
	}
	return set, nil
}

// checkOIDCEnviron refuses a SPECGUARD_OIDC_<NAME>_* variable of environ
// whose <NAME> is no openIdConnect scheme's of table: a misspelt one
// (SPECGUARD_OIDC_CORPIDP_URL for scheme corp-idp) would leave the
// document's provider in use while the operator thinks it replaced.
func checkOIDCEnviron(table *policy.Table, environ []string) error {
	var known []string
	for _, name := range declaredOIDC(table) {
		for _, suffix := range []string{"URL", "CLIENT_ID", "CLIENT_SECRET"} {
			known = append(known, "SPECGUARD_OIDC_"+oidcEnvName(name)+"_"+suffix)
		}
	}
	slices.Sort(known)
	var bad []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if !oidcVar.MatchString(name) || slices.Contains(known, name) {
			continue
		}
		msg := name + " names no openIdConnect scheme of " + table.Source
		if near := text.Nearest(name, known, 3); near != "" {
			msg += " (did you mean " + near + "?)"
		}
		bad = append(bad, msg)
	}
	if len(bad) > 0 {
		slices.Sort(bad)
		return errors.New(strings.Join(bad, "; "))
	}
	return nil
}

// oidcEnvName returns the <NAME> of the SPECGUARD_OIDC_<NAME>_* variables
// of scheme: upper case, every character but a letter or digit turned
// into '_'.
func oidcEnvName(scheme string) string {
	b := []byte(strings.ToUpper(scheme))
	for i, c := range b {
		if !('A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// suggestSetting is the setting name was probably meant to be: one it is
// the start of (SPECGUARD_REDIS), or one at most three edits away.
func suggestSetting(name string, known []string) string {
	for _, k := range known {
		if strings.HasPrefix(k, name+"_") {
			return k
		}
	}
	return text.Nearest(name, known, 3)
}

func envName(flagName string) string {
	return "SPECGUARD_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// loadConfig reads defaults, then the environment, then flags in args. An
// invalid value is an error naming the variable or flag.
func loadConfig(name string, args []string, getenv func(string) string, stdout, stderr io.Writer) (*Config, error) {
	c := &Config{}
	for _, s := range settings {
		if err := s.set(c, s.def); err != nil && s.def != "" {
			panic(err) // a bad default is a programming error
		}
	}
	for _, s := range settings {
		if v := getenv(envName(s.name)); v != "" {
			if err := bare(v); err != nil {
				return nil, fmt.Errorf("%s: %v", envName(s.name), err)
			}
			if err := s.set(c, v); err != nil {
				return nil, fmt.Errorf("%s: %v", envName(s.name), err)
			}
		}
	}
	fs := speccli.NewFlags(name+" serve", func(w io.Writer) {
		fmt.Fprintf(w, "Usage: %[1]s serve [flags]\n\nServes the API its embedded OpenAPI document describes, guarded as it declares.\nEvery flag can also be set with its SPECGUARD_* variable; a flag wins.\n\nExample:\n  SPECGUARD_ADDR=127.0.0.1:9000 %[1]s serve --redis-url redis://127.0.0.1:6379/0\n", name)
	})
	for _, s := range settings {
		s := s
		fs.Func(s.name, fmt.Sprintf("%s (%s, default %q)", s.usage, envName(s.name), s.def), func(v string) error {
			if err := bare(v); err != nil {
				return err
			}
			return s.set(c, v)
		})
	}
	if err := speccli.ParseFlags(fs, args, stdout, stderr); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, speccli.Usage(fmt.Errorf("unexpected argument %q", fs.Arg(0)))
	}
	if c.RefreshTTL < c.AccessTTL {
		return nil, fmt.Errorf("SPECGUARD_REFRESH_TTL (%s) is shorter than SPECGUARD_ACCESS_TTL (%s)", c.RefreshTTL, c.AccessTTL)
	}
	return c, nil
}

// devKeyPath is where the dev signing key lives inside the data dir.
func devKeyPath(dataDir string) string { return filepath.Join(dataDir, "signing-key.pem") }
