// Package redact hides the secrets of URLs before they reach a log line, an
// error message or /debug/pprof/cmdline.
package redact

import (
	"net/url"
	"regexp"
	"strings"
)

// Mask replaces every secret.
const Mask = "xxxxx"

// URL returns raw with every secret it may carry replaced by Mask: the
// password of its userinfo (postgres://user:secret@host), and the value of
// every query parameter whose name says it holds one (?password=,
// ?sslpassword=, ?client_secret=, ?token=, ...), whatever the case or
// percent-encoding of the name. Text that does not parse as a URL is
// redacted by pattern, so a malformed URL leaks nothing either.
func URL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Opaque != "" || u.User == nil && strings.Contains(afterScheme(raw), "@") {
		// An @ that did not end a userinfo may follow a password all the
		// same (see Misread): hidden by pattern, to err on the safe side.
		return byPattern(raw)
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			u.User = url.UserPassword(u.User.Username(), Mask)
		}
	}
	if u.RawQuery != "" {
		q, err := url.ParseQuery(u.RawQuery)
		if err != nil {
			return byPattern(raw)
		}
		changed := false
		for name, vs := range q {
			if secretName(name) {
				for i := range vs {
					vs[i] = Mask
				}
				changed = true
			}
		}
		if changed {
			u.RawQuery = q.Encode()
		}
	}
	return u.String()
}

// Misread reports whether raw holds an @ after its scheme's // that
// url.Parse does not read as the end of a userinfo: a password with an
// unencoded / (user:/s3cret@host, user:2024/s3cret@host) parses, without
// error, as the host user: or user:2024 and a path holding the password.
// Such a URL names another host than meant: a setting that reads one
// refuses it (without quoting it).
//
// It reports the @ of such a URL after a host with a colon (app:,
// app:2024): before its query or fragment; anywhere after an empty port
// (app:/s3#cret@db); in its fragment (app:2024/s3#cret@db), which a
// connection URL does not have; and in its query before the first = (a
// password's ?: app:2024/s3cret?x@db, not ?user=ann@example.com). A
// database name holding an @ (postgres://db/my@db) is not misread.
func Misread(raw string) bool {
	rest := afterScheme(raw)
	if !strings.Contains(rest, "@") {
		return false
	}
	u, err := url.Parse(raw)
	if err != nil || u.User != nil || u.Port() == "" && !strings.HasSuffix(u.Host, ":") {
		return false // no port, nor a colon ending the host: app, [::1]
	}
	param, _, _ := strings.Cut(u.RawQuery, "&")
	name, _, _ := strings.Cut(param, "=")
	if strings.HasSuffix(u.Host, ":") || strings.Contains(u.Fragment, "@") || strings.Contains(name, "@") {
		return true
	}
	if i := strings.IndexAny(rest, "?#"); i >= 0 {
		rest = rest[:i]
	}
	return strings.Contains(rest, "@")
}

// afterScheme is what follows raw's scheme and //; empty without them.
func afterScheme(raw string) string {
	_, rest, _ := strings.Cut(raw, "://")
	return rest
}

// Arg is URL for one command-line argument: a URL, or a flag with its
// value (--redis-url=redis://...).
func Arg(s string) string {
	if name, value, isFlag := strings.Cut(s, "="); isFlag && strings.HasPrefix(name, "-") {
		return name + "=" + URL(value)
	}
	if strings.Contains(s, "://") || strings.ContainsAny(s, "?&") {
		return URL(s)
	}
	return s
}

// secretName reports whether a query parameter's name says it holds a
// secret: password, sslpassword, pass, passwd, secret, client_secret,
// token, access_token, apikey, api_key, key (not sslkey or sslrootcert,
// which name files).
func secretName(name string) bool {
	n := strings.ToLower(name)
	if n == "key" || n == "apikey" || n == "api_key" || n == "api-key" {
		return true
	}
	for _, s := range []string{"pass", "secret", "token", "credential", "auth"} {
		if strings.Contains(n, s) {
			return true
		}
	}
	return false
}

var (
	// userinfo: scheme://user:secret@, up to the last @ (a secret that
	// did not parse may hold any character)
	userinfoPattern = regexp.MustCompile(`(://[^/@:?#]*):.*@`)
	// a query parameter whose (possibly percent-encoded) name holds a secret word
	queryPattern = regexp.MustCompile(`(?i)([?&;][^=&;#]*(?:pass|secret|token|credential|auth|%[0-9a-f]{2})[^=&;#]*=)[^&;#]*`)
	keyPattern   = regexp.MustCompile(`(?i)([?&;](?:key|apikey|api_key|api-key)=)[^&;#]*`)
)

// byPattern redacts what looks like a secret in text that may not parse:
// it errs on the side of hiding (a percent-encoded name is hidden).
func byPattern(s string) string {
	s = userinfoPattern.ReplaceAllString(s, "${1}:"+Mask+"@")
	s = queryPattern.ReplaceAllStringFunc(s, func(m string) string {
		name, _, _ := strings.Cut(m, "=")
		if dec, err := url.QueryUnescape(name[1:]); err == nil && !secretName(dec) {
			return m
		}
		return name + "=" + Mask
	})
	return keyPattern.ReplaceAllString(s, "${1}"+Mask)
}
