package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	tests := []struct {
		name, in string
		secret   string // must not appear in the output
		keep     string // must appear in the output
	}{
		{"userinfo", "postgres://app:s3cret@db:5432/app", "s3cret", "postgres://app:xxxxx@db:5432/app"},
		{"query password", "postgres://db:5432/app?user=app&password=s3cret", "s3cret", "user=app"},
		{"query password, odd case", "postgres://db/app?PassWord=s3cret", "s3cret", "db/app"},
		{"percent-encoded name", "postgres://db/app?pass%77ord=s3cret", "s3cret", "db/app"},
		{"sslpassword", "postgres://db/app?sslmode=verify-full&sslpassword=s3cret&sslkey=/etc/k.pem", "s3cret", "sslkey=%2Fetc%2Fk.pem"},
		{"both", "postgresql://app:one@db/app?password=two", "one", "xxxxx"},
		{"both, second", "postgresql://app:one@db/app?password=two", "two", "app:xxxxx@"},
		{"redis", "redis://:s3cret@127.0.0.1:6379/0", "s3cret", "127.0.0.1:6379/0"},
		{"redis cluster", "redis+cluster://u:s3cret@h1:7000,h2:7000", "s3cret", "h2:7000"},
		{"client secret", "https://id.example.com/?client_secret=s3cret", "s3cret", "id.example.com"},
		{"token", "https://x.example.com/cb?access_token=s3cret", "s3cret", "x.example.com"},
		{"unparseable userinfo", "postgres://app:pa/ss@db/app", "pa/ss", "postgres://app:xxxxx@"},
		// A password with an unencoded / parses as a host and a path.
		{"password starting with /", "postgres://app:/s3cret@db:5432/app", "s3cret", "postgres://app:xxxxx@"},
		{"password with digits then /", "postgres://app:2024/s3cret@db/app", "s3cret", "xxxxx@db/app"},
		{"redis password starting with /", "redis://:/s3cret@cache:6379/0", "s3cret", "cache:6379/0"},
		{"cluster password starting with /", "redis+cluster://u:/s3cret@h1:7000,h2:7000", "s3cret", "h2:7000"},
		{"password with / then #", "postgres://app:/s3#cret@db/app", "s3#cret", "postgres://app:xxxxx@db/app"},
		{"password with / then ?", "postgres://app:/s3cret?x@db/app", "s3cret", "postgres://app:xxxxx@db/app"},
		{"password with digits, / then #", "postgres://app:2024/s3#cret@db/app", "cret", "postgres://app:xxxxx@db/app"},
		{"unparseable query", "postgres://db:bad port/app?password=s3cret", "s3cret", "password=xxxxx"},
		{"no secret", "postgres://db:5432/app?sslmode=disable", "xxxxx", "sslmode=disable"},
		{"sqlite path", "sqlite:/var/lib/app.db", "xxxxx", "sqlite:/var/lib/app.db"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := URL(tt.in)
			if strings.Contains(got, tt.secret) {
				t.Errorf("URL(%q) = %q: the secret %q is still there", tt.in, got, tt.secret)
			}
			if !strings.Contains(got, tt.keep) {
				t.Errorf("URL(%q) = %q, want it to keep %q", tt.in, got, tt.keep)
			}
		})
	}
}

func TestArg(t *testing.T) {
	for in, want := range map[string]string{
		"--database-url=postgres://db/app?password=s3cret": "--database-url=postgres://db/app?password=xxxxx",
		"postgres://u:s3cret@db/app":                       "postgres://u:xxxxx@db/app",
		"--database-url=postgres://u:/s3cret@db/app":       "--database-url=postgres://u:xxxxx@db/app",
		"serve":                 "serve",
		"--addr=127.0.0.1:8080": "--addr=127.0.0.1:8080",
	} {
		if got := Arg(in); got != want {
			t.Errorf("Arg(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestMisread(t *testing.T) {
	for in, want := range map[string]bool{
		"postgres://app:/s3cret@db:5432/app": true,
		"postgres://app:2024/s3cret@db/app":  true,
		"redis://:/s3cret@cache:6379/0":      true,
		"postgres://app:s3cret@db/app":       false, // a userinfo, read as one
		"redis://:p@ss@cache:6379/0":         false, // the last @ ends it
		"postgres://db/app?user=a@b":         false, // in the query
		"postgres://db/app":                  false,
		"sqlite:/var/lib/a@b.db":             false, // no authority
		"postgres://app:/s3#cret@db/app":     true,  // a fragment cut the password
		"postgres://app:/s3cret?x@db/app":    true,  // a query cut the password
		"postgres://app:2024/s3#cret@db/app": true,  // digits, then / and #
		"postgres://app:2024/s3cret?x@db":    true,  // digits, then / and ?
		"postgres://app:2024#cret@db/app":    true,
		"redis://:2024/s3#cret@cache:6379/0": true,
		"postgres://db:5432/app?user=a@b":    false, // an address in the query
		"postgres://[::1]/my@db":             false,
		"postgres://[::1]:5432/my@db":        true,  // as app:2024/s3cret@db
		"postgres://db/my@db":                false, // a database's name
		"postgres:///my@db?host=/tmp":        false,
	} {
		if got := Misread(in); got != want {
			t.Errorf("Misread(%q) = %v, want %v", in, got, want)
		}
	}
}
