package oidc

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/internal/jws"
)

// introspectionWait bounds how long a token waits for one of the
// maxIntrospections slots: past it the token is undecided (503) at once,
// rather than held for the client's whole timeout behind calls that may
// be made-up tokens'.
const introspectionWait = 200 * time.Millisecond

// introspected decides an opaque token by introspection (RFC 7662) at the
// provider, through a cache keyed by the token's SHA-256. Concurrent
// requests for one token share one call; errors are never cached.
func (p *oidcProvider) introspected(ctx context.Context, raw string, now time.Time) (*security.Principal, error) {
	st := p.state.Load()
	if st == nil {
		return nil, unclaimed(fmt.Errorf("%w: the %s provider has not answered yet", security.ErrUnavailable, p.scheme.Name))
	}
	if st.introspection == "" || p.id == "" {
		return nil, unclaimed(fmt.Errorf("%w: %s accepts no opaque tokens (no introspection endpoint or credentials)", security.ErrInvalid, p.scheme.Name))
	}
	sum := sha256.Sum256([]byte(raw))
	key := string(sum[:])
	if e, ok := p.introspect.Get(key); ok && now.Before(e.until) {
		if e.p == nil {
			return nil, unclaimed(fmt.Errorf("%w: the token is not active", security.ErrInvalid))
		}
		return e.p, nil
	}
	v, err, _ := p.flight.Do(key, func() (any, error) {
		// Made-up tokens must not turn into a flood of calls to the
		// provider: a few at a time, and the rest refused as undecided
		// rather than queued.
		wait := time.NewTimer(introspectionWait)
		defer wait.Stop()
		select {
		case p.calls <- struct{}{}:
			defer func() { <-p.calls }()
		case <-wait.C:
			return nil, errors.New("introspection: too many calls in flight")
		}
		// A caller that gives up must not fail the others waiting on it.
		ictx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.client.Timeout)
		defer cancel()
		e, err := p.callIntrospection(ictx, st, raw)
		if err != nil {
			p.report(err)
			return nil, err
		}
		p.report(nil)
		p.introspect.Put(key, e)
		return e, nil
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", security.ErrUnavailable, p.scheme.Name, err)
	}
	e := v.(*outsideEntry)
	if e.p == nil {
		return nil, unclaimed(fmt.Errorf("%w: the token is not active", security.ErrInvalid))
	}
	return e.p, nil
}

// callIntrospection asks the provider about raw (client_secret_basic).
func (p *oidcProvider) callIntrospection(ctx context.Context, st *providerState, raw string) (*outsideEntry, error) {
	form := url.Values{"token": {raw}, "token_type_hint": {"access_token"}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.introspection, strings.NewReader(form.Encode()))
	if err != nil {
		return nil, fmt.Errorf("introspection: %w", masked(err))
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")
	// RFC 6749 section 2.3.1: both form-encoded before Basic.
	req.SetBasicAuth(url.QueryEscape(p.id), url.QueryEscape(p.pass))
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("introspection: %w", masked(err))
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("introspection: status %d", resp.StatusCode)
	}
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("introspection: %w", err)
	}
	return p.parseIntrospection(data, st, p.cfg.now())
}

// parseIntrospection reads an introspection response. An answer that
// cannot be read is an error (the token is undecided); an inactive token,
// or an active one this scheme must not accept (expired, another issuer
// or audience), is an entry without principal, kept briefly.
func (p *oidcProvider) parseIntrospection(data []byte, st *providerState, now time.Time) (*outsideEntry, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, fmt.Errorf("introspection: the answer is not a JSON object")
	}
	inactive := &outsideEntry{until: now.Add(p.cfg.negativeTTL)}
	active, ok := claims["active"].(bool)
	if !ok {
		return nil, fmt.Errorf("introspection: the answer has no boolean active")
	}
	if !active {
		return inactive, nil
	}
	// Only an access token used as a bearer token: not a refresh or ID
	// token, nor one bound to a key (DPoP) that the caller may not hold;
	// with an exp (required, as of a JWT) and time claims in range.
	if tt, present := claims["token_type"]; present {
		if s, _ := tt.(string); !strings.EqualFold(s, "bearer") && !strings.EqualFold(s, "access_token") {
			return inactive, nil
		}
	}
	if checkClaims(claims) != nil {
		return inactive, nil
	}
	leeway := p.cfg.leeway
	exp, ok := jws.NumericTime(claims["exp"])
	if !ok || !now.Before(exp.Add(leeway)) {
		return inactive, nil
	}
	until := minTime(now.Add(p.cfg.introspectTTL), exp.Add(leeway))
	if nbf, ok := jws.NumericTime(claims["nbf"]); ok && now.Before(nbf.Add(-leeway)) {
		return inactive, nil
	}
	if iss, present := claims["iss"]; present {
		if s, _ := iss.(string); !slices.Contains(st.issuers, s) {
			return inactive, nil
		}
	}
	if !audienceMatches(claims["aud"], p.scheme.Provider.Audience) {
		return inactive, nil
	}
	sub, _ := claims["sub"].(string)
	jti, _ := claims["jti"].(string)
	pr, err := p.principal(claims, sub, jti)
	if err != nil {
		return inactive, nil
	}
	return &outsideEntry{p: pr, until: until}, nil
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// audienceMatches reports whether aud (a string or an array of strings)
// names one of want.
func audienceMatches(aud any, want []string) bool {
	switch v := aud.(type) {
	case string:
		return slices.Contains(want, v)
	case []any:
		for _, item := range v {
			if s, ok := item.(string); ok && slices.Contains(want, s) {
				return true
			}
		}
	}
	return false
}
