package problem

import "strings"

// Challenge is one WWW-Authenticate challenge. Scheme "Bearer" follows RFC
// 6750 (error, error_description, scope); other schemes (an API key in a
// header, a session cookie) name where the credential goes with Param.
type Challenge struct {
	Scheme      string // "Bearer", "ApiKey", "Cookie"
	Realm       string
	Error       string // empty when credentials were simply absent
	Description string
	Scope       string // space-separated scopes, for insufficient_scope
	Param       string // ApiKey: the header; Cookie: the cookie name
}

// String formats the challenge; quoted values keep only the characters RFC
// 6750 allows there.
func (c Challenge) String() string {
	var b strings.Builder
	b.WriteString(c.Scheme)
	b.WriteString(` realm="`)
	b.WriteString(QuoteSafe(c.Realm))
	b.WriteByte('"')
	add := func(name, value string) {
		if value != "" {
			b.WriteString(", ")
			b.WriteString(name)
			b.WriteString(`="`)
			b.WriteString(QuoteSafe(value))
			b.WriteByte('"')
		}
	}
	switch c.Scheme {
	case "ApiKey":
		add("header", c.Param)
	case "Cookie":
		add("cookie", c.Param)
	}
	add("error", c.Error)
	add("error_description", c.Description)
	add("scope", c.Scope)
	return b.String()
}

// QuoteSafe keeps only the characters RFC 6750 allows inside
// error_description and scope (%x20-21 / %x23-5B / %x5D-7E).
func QuoteSafe(s string) string {
	ok := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 0x20 && c <= 0x7e && c != '"' && c != '\\' {
			b.WriteByte(c)
		}
	}
	return b.String()
}
