package conform

// The owner family: an operation the document declares owner-only
// (x-owner) is tried on a resource one account made, as another account
// of the same scopes (403 or 404), as the owner (2xx) and as a holder of
// an override scope (2xx). These cases change data, on the server
// conform owns.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/specguard/specguard/internal/formats"
	"github.com/specguard/specguard/policy"
)

// ownerCases runs the owner family on every owner-only operation.
func (r *runner) ownerCases(ctx context.Context, ops []*policy.Operation) {
	for _, op := range ops {
		if op.Owner != nil && r.wants("owner") {
			r.ownerCase(ctx, op)
		}
	}
	if ctx.Err() == nil {
		r.deleteMade(ctx)
	}
}

func (r *runner) ownerCase(ctx context.Context, op *policy.Operation) {
	create := r.creator(op)
	if create == nil {
		r.report(op, "owner", Skip, "no POST %s to make a resource with", parentPath(op.Path))
		return
	}
	// The owner: a credential that may make the resource and act on it.
	overrides := func(c *credential) bool {
		return c.known && slices.ContainsFunc(op.Owner.Override, func(s string) bool { return c.holds([]string{s}) })
	}
	var owner, other, override *credential
	for _, c := range r.live() {
		if owner == nil && may(c, create) && may(c, op) && !overrides(c) && r.account(ctx, c) != "" {
			owner = c
		}
	}
	if owner == nil {
		r.report(op, "owner", Skip, "no configured credential without an override scope may make a resource (%s) and act on it", create.ID)
		return
	}
	for _, c := range r.live() {
		acct := r.account(ctx, c)
		if acct == "" || acct == r.account(ctx, owner) || !may(c, op) {
			continue
		}
		switch {
		case overrides(c):
			if override == nil {
				override = c
			}
		case other == nil:
			other = c
		}
	}

	// Another account's, which it must not touch (403 or 404).
	if other == nil {
		r.report(op, "owner:other", Skip, "no configured credential of another account may call it without an override scope (the credentials file can name two accounts of the same role)")
	} else if id, err := r.makeResource(ctx, create, owner); err != nil {
		r.report(op, "owner:other", Skip, "could not make a resource as %s: %v", owner.name, err)
	} else {
		r.madeOne(op, id, owner)
		// What the owner reads of it before and after: a refusal must
		// come before the write, not after it.
		read := r.table.Lookup(http.MethodGet, op.Pattern)
		if read == op || read != nil && !may(owner, read) {
			read = nil
		}
		readIt := func() (*response, error) {
			return waiting(ctx, ownerWait, func() (*response, error) { return r.sendBody(ctx, "owner", read, owner, nil, id) })
		}
		if read != nil {
			if before, err := readIt(); err != nil || before.status/100 != 2 {
				read = nil
			}
		}
		send := func(body []byte) (*response, error) {
			return waiting(ctx, ownerWait, func() (*response, error) { return r.sendBody(ctx, "owner:other", op, other, body, id) })
		}
		var resp *response
		var err error
		marked := markedBody(op) // sent: the marker is looked for afterwards
		retry := marked == nil
		if marked != nil {
			resp, err = send(marked)
			// The server's own checks may refuse the marked strings (a
			// value it reads otherwise): the least body then, the marker
			// looked for all the same (a write before the refusal).
			retry = err == nil && resp.status/100 == 4 && resp.status != http.StatusForbidden && resp.status != http.StatusNotFound && resp.status != http.StatusTooManyRequests
		}
		if retry {
			var least []byte
			if least, err = minimalBody(op); err == nil {
				resp, err = send(least)
			}
		}
		switch {
		case err != nil:
			r.report(op, "owner:other", Fail, "%v", err)
		case resp.status == http.StatusTooManyRequests:
			r.report(op, "owner:other", Skip, "rate limited before the case ran (%s)", strings.Join(violated(resp), ", "))
		case resp.status != http.StatusForbidden && resp.status != http.StatusNotFound:
			r.report(op, "owner:other", Fail, "%s acted on %s's resource %s: want 403 or 404, got %s", other.name, owner.name, id, resp)
		case read == nil:
			r.report(op, "owner:other", Pass, "%d: %s may not act on %s's resource (no GET of it to see that nothing changed)", resp.status, other.name, owner.name)
		default:
			after, err := readIt()
			switch {
			case err == nil && (after.status == http.StatusNotFound || after.status == http.StatusGone):
				// It read it before: the other account's request took it.
				r.report(op, "owner:other", Fail, "%d to %s, yet %s can no longer read its resource %s: %s answers %s", resp.status, other.name, owner.name, id, read.ID, after)
			case err == nil && after.status/100 == 2 && marked != nil && bytes.Contains(after.body, []byte(ownerMarker)):
				r.report(op, "owner:other", Fail, "%d to %s, yet its write was carried out: %s reads %q in its resource %s", resp.status, other.name, owner.name, ownerMarker, id)
			case err != nil || after.status/100 != 2:
				r.report(op, "owner:other", Pass, "%d: %s may not act on %s's resource (reading it after failed, so unchanged is not shown: %v %v)", resp.status, other.name, owner.name, after, err)
			case marked == nil && op.Method != http.MethodDelete:
				r.report(op, "owner:other", Pass, "%d: %s may not act on %s's resource (its body could carry no marker to look for)", resp.status, other.name, owner.name)
			default:
				r.report(op, "owner:other", Pass, "%d: %s may not act on %s's resource, which %s reads unchanged", resp.status, other.name, owner.name, read.ID)
			}
		}
	}

	// Its owner, and a holder of an override scope, may.
	for _, c := range []struct {
		name string
		cred *credential
		skip string
	}{
		{"owner:self", owner, ""},
		{"owner:override", override, fmt.Sprintf("no configured credential of another account holds %s", strings.Join(op.Owner.Override, " or "))},
	} {
		if c.cred == nil {
			if len(op.Owner.Override) > 0 {
				r.report(op, c.name, Skip, "%s", c.skip)
			}
			continue
		}
		id, err := r.makeResource(ctx, create, owner)
		if err != nil {
			r.report(op, c.name, Skip, "could not make a resource as %s: %v", owner.name, err)
			continue
		}
		r.madeOne(op, id, owner)
		resp, err := r.sendOn(ctx, c.name, op, c.cred, id)
		switch {
		case err != nil:
			r.report(op, c.name, Fail, "%v", err)
		case resp.status == http.StatusTooManyRequests:
			r.report(op, c.name, Skip, "rate limited before the case ran (%s)", strings.Join(violated(resp), ", "))
		case resp.status/100 != 2:
			r.report(op, c.name, Fail, "%s on %s's resource %s: want 2xx, got %s", c.cred.name, owner.name, id, resp)
		default:
			r.report(op, c.name, Pass, "%d for %s", resp.status, c.cred.name)
		}
	}
}

// madeOne records the resource id the collection POST of op made as
// owner, to delete once the owner cases end: with the DELETE on the
// collection's path and one parameter more (the resource's own, whatever
// op does to it: /things/{id} for /things/{id}/publish), when there is one.
func (r *runner) madeOne(op *policy.Operation, id string, owner *credential) {
	coll := strings.ReplaceAll(parentPath(op.Pattern), "//", "/")
	for _, o := range r.table.Operations() {
		if rest, ok := strings.CutPrefix(o.Pattern, coll+"/{"); ok && o.Method == http.MethodDelete && !strings.Contains(rest, "/") {
			r.made = append(r.made, made{o, id, owner})
			return
		}
	}
}

// parentPath is the collection of a resource path: /posts for /posts/{id}.
func parentPath(p string) string {
	if i := strings.LastIndex(p, "/{"); i > 0 {
		return p[:i]
	}
	return path.Dir(p)
}

// creator is the POST that makes the resources op acts on: on the parent
// collection of its path.
func (r *runner) creator(op *policy.Operation) *policy.Operation {
	return r.table.Lookup(http.MethodPost, strings.ReplaceAll(parentPath(op.Pattern), "//", "/"))
}

// ownerWait is the longest Retry-After, in seconds, the owner cases wait
// for.
const ownerWait = 60

// makeResource makes a resource with create as cred, with the least body
// its schema accepts, and returns its id: the answer's id, or the last
// segment of its Location.
func (r *runner) makeResource(ctx context.Context, create *policy.Operation, cred *credential) (string, error) {
	body, err := minimalBody(create)
	if err != nil {
		return "", err
	}
	// The cases before have spent what the create operation's tiers
	// allow the owner at once, more likely the tighter they are: wait
	// for the bucket (a minute at most) rather than skip the case.
	resp, err := waiting(ctx, ownerWait, func() (*response, error) { return r.sendBody(ctx, "owner", create, cred, body, "") })
	if err != nil {
		return "", err
	}
	if resp.status/100 != 2 {
		return "", fmt.Errorf("%s %s answered %s", create.Method, create.Path, resp)
	}
	var m map[string]any
	if json.Unmarshal(resp.body, &m) == nil {
		if id, ok := m["id"].(string); ok && id != "" {
			return id, nil
		}
	}
	if loc := resp.header.Get("Location"); loc != "" {
		return path.Base(loc), nil
	}
	return "", fmt.Errorf("%s %s answered %d with no id and no Location", create.Method, create.Path, resp.status)
}

// sendOn calls op on resource id (its last path parameter) as cred, with
// the least body its schema accepts.
func (r *runner) sendOn(ctx context.Context, name string, op *policy.Operation, cred *credential, id string) (*response, error) {
	body, err := minimalBody(op)
	if err != nil {
		return nil, err
	}
	return waiting(ctx, ownerWait, func() (*response, error) { return r.sendBody(ctx, name, op, cred, body, id) })
}

// sendBody sends op as cred with body (JSON; nil for none), its last path
// parameter id when not empty.
func (r *runner) sendBody(ctx context.Context, name string, op *policy.Operation, cred *credential, body []byte, id string) (*response, error) {
	v := &violation{body: body}
	if id != "" {
		param, err := lastParam(op)
		if err != nil {
			return nil, err
		}
		v.path = map[string]string{param: id}
	}
	if body == nil {
		v.body = nil
	}
	return r.send(ctx, name, op, cred, v, nil)
}

// minimalBody is the least JSON body op's schema accepts: nil when op
// takes none.
func minimalBody(op *policy.Operation) ([]byte, error) {
	rb := op.Spec.RequestBody
	if rb == nil || rb.Value == nil {
		return nil, nil
	}
	mt := rb.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return nil, fmt.Errorf("%s takes no JSON body", op.ID)
	}
	v := minimal(mt.Schema.Value, 0)
	if err := mt.Schema.Value.VisitJSON(v, formats.Options...); err != nil {
		return nil, fmt.Errorf("no body of %s found that its schema accepts: %v", op.ID, err)
	}
	return json.Marshal(v)
}

// ownerMarker is what the other account's write puts in every string it
// may: found in the owner's resource afterwards, the write was carried
// out, whatever the answer said.
const ownerMarker = "conform-owner-other"

// markedBody is the least body op's schema accepts with ownerMarker in
// every plain string property (no enum, pattern or format, not read-only,
// the marker within its length bounds); nil when there is none, or the
// schema does not accept the result.
func markedBody(op *policy.Operation) []byte {
	rb := op.Spec.RequestBody
	if rb == nil || rb.Value == nil {
		return nil
	}
	mt := rb.Value.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return nil
	}
	s := mt.Schema.Value
	m, ok := minimal(s, 0).(map[string]any)
	if !ok {
		return nil
	}
	marked := false
	for name, p := range s.Properties {
		ps := p.Value
		if ps == nil || !ps.Type.Is("string") || len(ps.Enum) > 0 || ps.Pattern != "" || ps.Format != "" || ps.ReadOnly ||
			ps.MinLength > uint64(len(ownerMarker)) || ps.MaxLength != nil && *ps.MaxLength < uint64(len(ownerMarker)) {
			continue
		}
		m[name], marked = ownerMarker, true
	}
	if !marked || s.VisitJSON(m, formats.Options...) != nil {
		return nil
	}
	b, err := json.Marshal(m)
	if err != nil {
		return nil
	}
	return b
}

// formatSamples are values of the string formats validation checks
// (internal/formats), for a schema that names one.
var formatSamples = map[string]string{
	"email": "conform@example.com", "uuid": "00000000-0000-4000-8000-000000000000", "uri": "https://example.com/conform",
	"hostname": "conform.example.com", "ipv4": "192.0.2.1", "ipv6": "2001:db8::1",
	"date": "2026-01-01", "date-time": "2026-01-01T00:00:00Z",
}

// minimal is the least value schema s accepts: an object of its required
// properties (and as many more as minProperties asks), a string of the
// example, default, first enum value or "conform" sized to its bounds.
func minimal(s *openapi3.Schema, depth int) any {
	if depth > 8 {
		return nil
	}
	switch {
	case s.Example != nil:
		return s.Example
	case s.Default != nil:
		return s.Default
	case len(s.Enum) > 0:
		return s.Enum[0]
	}
	switch {
	case s.Type.Is("object") || len(s.Properties) > 0:
		out := map[string]any{}
		names := slices.Sorted(func(yield func(string) bool) {
			for k := range s.Properties {
				if !yield(k) {
					return
				}
			}
		})
		for _, k := range s.Required {
			if p := s.Properties[k]; p != nil && p.Value != nil {
				out[k] = minimal(p.Value, depth+1)
			}
		}
		for _, k := range names {
			if uint64(len(out)) >= s.MinProps {
				break
			}
			if _, done := out[k]; !done && s.Properties[k].Value != nil && !s.Properties[k].Value.ReadOnly {
				out[k] = minimal(s.Properties[k].Value, depth+1)
			}
		}
		return out
	case s.Type.Is("array"):
		out := []any{}
		for uint64(len(out)) < s.MinItems && s.Items != nil && s.Items.Value != nil {
			out = append(out, minimal(s.Items.Value, depth+1))
		}
		return out
	case s.Type.Is("integer") || s.Type.Is("number"):
		if s.Min != nil {
			return *s.Min
		}
		return 1
	case s.Type.Is("boolean"):
		return false
	}
	switch s.Format {
	case "date-time":
		return time.Now().UTC().Format(time.RFC3339)
	case "date":
		return time.Now().UTC().Format(time.DateOnly)
	}
	if v, ok := formatSamples[s.Format]; ok {
		return v
	}
	str := "conform"
	if s.MaxLength != nil && uint64(len(str)) > *s.MaxLength {
		str = str[:*s.MaxLength]
	}
	for uint64(len(str)) < s.MinLength {
		str += "x"
	}
	return str
}

// account is the id of the account c acts for: its configured account, or
// what the document's GET /me (x-credential: me) says; "" when unknown.
func (r *runner) account(ctx context.Context, c *credential) string {
	if c.account != "" || c.accountAsked {
		return c.account
	}
	r.askMe(ctx, c)
	return c.account
}

// askMe asks the document's GET /me (x-credential: me) what c is: it sets
// c's account, when the file gives none, and returns the scopes the
// answer lists (nil when there is no such operation for c, or no answer).
func (r *runner) askMe(ctx context.Context, c *credential) []string {
	c.accountAsked = true
	me := r.credentialOp("me")
	if me == nil || !usable(c, me) || !slices.ContainsFunc(me.Security.Alternatives, func(a policy.Requirement) bool { return satisfies(c, a) }) {
		return nil
	}
	// After the rate-limit cases, /me's tiers may be spent: wait a little.
	resp, err := patiently(ctx, func() (*response, error) { return r.send(ctx, "owner", me, c, nil, nil) })
	if err != nil || resp.status != http.StatusOK {
		return nil
	}
	var m struct {
		ID     string
		Scopes []string
	}
	if json.NewDecoder(bytes.NewReader(resp.body)).Decode(&m) != nil {
		return nil
	}
	if c.account == "" {
		c.account = m.ID
	}
	return m.Scopes
}

// credentialOp is the document's operation of x-credential kind, or nil.
func (r *runner) credentialOp(kind string) *policy.Operation {
	for _, op := range r.table.Operations() {
		if op.Spec.Extensions[policy.ExtCredential] == kind {
			return op
		}
	}
	return nil
}
