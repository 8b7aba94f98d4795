package credentials

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/getkin/kin-openapi/openapi3"
	"golang.org/x/crypto/argon2"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/text/unicode/norm"

	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// Argon2 are the argon2id parameters passwords are hashed with.
type Argon2 struct {
	Memory  uint32 // KiB
	Time    uint32 // passes
	Threads uint8
}

// check refuses parameters whose hashes could not be checked (see
// decodeArgon2's bounds) or could not be made.
func (a Argon2) check() error {
	switch {
	case a.Memory < 8 || a.Memory > 4<<20:
		return fmt.Errorf("memory %d KiB: want 8 KiB to 4 GiB", a.Memory)
	case a.Time < 1 || a.Time > 100:
		return fmt.Errorf("time %d: want 1 to 100 passes", a.Time)
	case a.Threads < 1:
		return errors.New("threads 0: want 1 or more")
	}
	return nil
}

// DefaultArgon2 is OWASP's first recommendation for argon2id: 19 MiB, two
// passes, one thread (WithArgon2 changes it).
var DefaultArgon2 = Argon2{Memory: 19 * 1024, Time: 2, Threads: 1}

// passwordRule is how long a new password must be: as the document's
// register operation declares its password property (minLength,
// maxLength), or at least DefaultMinPassword characters when it declares
// no minLength. The service checks it wherever a password is set
// (registration, ChangePassword, Seed, HashPassword), so a document served
// without request validation, or a password set in code, holds to it too.
// A password set before stays valid: logins never check it.
type passwordRule struct{ min, max int } // max 0: none

// DefaultMinPassword is the shortest new password, in characters, when the
// document's register operation declares no minLength for it (the
// Fragment declares 10).
const DefaultMinPassword = 10

// check applies the rule to password as typed and as hashed (NFKC, which
// may make one character many: U+FDFA is 18): the minimum to the shorter,
// the maximum to the longer.
func (r passwordRule) check(password string) error {
	typed, hashed := utf8.RuneCountInString(password), utf8.RuneCountInString(normalized(password))
	switch {
	case min(typed, hashed) < r.min:
		return fmt.Errorf("shorter than %d characters", r.min)
	case r.max > 0 && max(typed, hashed) > r.max:
		return fmt.Errorf("longer than %d characters", r.max)
	}
	return nil
}

// passwordRuleOf reads the rule from the password property of register's
// request body (op nil: the document serves no registration): every
// minLength and maxLength that applies to it, in the body's schema and its
// allOf parts, and in the property's schema and its allOf parts (all must
// hold, so the largest minimum and the smallest maximum).
func passwordRuleOf(op *policy.Operation) passwordRule {
	var rule passwordRule
	if op != nil {
		for _, mt := range bodyContent(op.Spec) {
			if mt != nil {
				for _, body := range allOf(mt.Schema, 0) {
					for _, p := range allOf(body.Properties["password"], 0) {
						rule.min = max(rule.min, int(p.MinLength))
						if p.MaxLength != nil && (rule.max == 0 || int(*p.MaxLength) < rule.max) {
							rule.max = int(*p.MaxLength)
						}
					}
				}
			}
		}
	}
	if rule.min == 0 {
		rule.min = DefaultMinPassword
	}
	return rule
}

// allOf is s and, depth-first, every schema of its allOf (nested ones
// too): what a value of s must all satisfy. Nil parts are left out.
func allOf(s *openapi3.SchemaRef, depth int) []*openapi3.Schema {
	if s == nil || s.Value == nil || depth > 8 {
		return nil
	}
	out := []*openapi3.Schema{s.Value}
	for _, part := range s.Value.AllOf {
		out = append(out, allOf(part, depth+1)...)
	}
	return out
}

// passwords hashes passwords with argon2id (any length: bcrypt refuses
// more than 72 bytes, which the spec allows), checks them against argon2id
// or bcrypt hashes, and says when a hash should be replaced by one of the
// current parameters. It runs on all CPUs but one at a time (one on a
// single CPU): a password check costs tens of milliseconds of CPU, and a
// burst of logins or registrations running all at once would starve every
// other request (their store calls then time out), so the burst queues
// here instead, bounded by each request's context.
type passwords struct {
	params Argon2
	slots  chan struct{}
	wait   time.Duration // passwordWait
	dummy  string        // checked when an account is unknown, so timing does not tell
}

func newPasswords(params Argon2) (*passwords, error) {
	p := &passwords{params: params, slots: make(chan struct{}, max(1, runtime.GOMAXPROCS(0)-1)), wait: passwordWait}
	var err error
	p.dummy, err = p.encode("specguard timing equaliser")
	return p, err
}

// passwordWait bounds how long a password check waits for a slot: a
// burst larger than the slots can work through in that time is answered
// 503 (retry) rather than queued without end, each request holding its
// connection and memory.
const passwordWait = 2 * time.Second

// acquire waits for a slot, passwordWait at most; a request that gives up
// first, or waits too long, is answered as by a store that did not answer
// in time.
func (p *passwords) acquire(ctx context.Context) error {
	wait := time.NewTimer(p.wait)
	defer wait.Stop()
	select {
	case p.slots <- struct{}{}:
		return nil
	case <-wait.C:
		return fmt.Errorf("%w: too many password checks waiting", security.ErrUnavailable)
	case <-ctx.Done():
		return fmt.Errorf("%w: waiting to check a password: %v", security.ErrUnavailable, ctx.Err())
	}
}

// hash returns the argon2id hash of password, in the PHC string format.
func (p *passwords) hash(ctx context.Context, password string) (string, error) {
	if err := p.acquire(ctx); err != nil {
		return "", err
	}
	defer func() { <-p.slots }()
	return p.encode(password)
}

// normalized is password as it is hashed and checked: in Unicode
// normalization form NFKC (NIST SP 800-63B 5.1.1.2), so that one typed
// with a composed é on one device and with e and a combining accent on
// another, or in full-width letters, is one password.
func normalized(password string) string { return norm.NFKC.String(password) }

func (p *passwords) encode(password string) (string, error) {
	salt := make([]byte, 16)
	if _, err := rand.Read(salt); err != nil {
		return "", err
	}
	key := argon2.IDKey([]byte(normalized(password)), salt, p.params.Time, p.params.Memory, p.params.Threads, 32)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.params.Memory, p.params.Time, p.params.Threads,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// match reports whether password matches hash (argon2id or bcrypt), and
// whether hash should be replaced by a hash of the current parameters. An
// empty hash (no such account) is compared against a dummy, costing the
// same time.
func (p *passwords) match(ctx context.Context, hash, password string) (ok, rehash bool, err error) {
	if err := p.acquire(ctx); err != nil {
		return false, false, err
	}
	defer func() { <-p.slots }()
	if hash == "" {
		_, _ = p.check(p.dummy, password)
		return false, false, nil
	}
	ok, rehash = p.check(hash, password)
	return ok, rehash, nil
}

// matches reports whether password matches hash, without waiting for a
// slot: for start-up, before any request.
func (p *passwords) matches(hash, password string) bool {
	ok, _ := p.check(hash, password)
	return ok
}

// check reports whether password matches hash, normalized; or as given,
// for a hash made before passwords were normalized (or given in a users
// file), which is then to be made again (rehash).
func (p *passwords) check(hash, password string) (ok, rehash bool) {
	n := normalized(password)
	if ok, rehash = p.checkAs(hash, n); ok || n == password {
		return ok, rehash
	}
	ok, _ = p.checkAs(hash, password)
	return ok, ok
}

func (p *passwords) checkAs(hash, password string) (ok, rehash bool) {
	if strings.HasPrefix(hash, "$argon2id$") {
		params, salt, key, err := decodeArgon2(hash)
		if err != nil {
			return false, false
		}
		got := argon2.IDKey([]byte(password), salt, params.Time, params.Memory, params.Threads, uint32(len(key)))
		return subtle.ConstantTimeCompare(got, key) == 1, params != p.params
	}
	// bcrypt: hashes made before argon2id, or given in a users file. A
	// password of more than 72 bytes never matches one: bcrypt compares the
	// first 72 alone (only GenerateFromPassword refuses more), so another
	// password sharing them would log in, and its upgrade to argon2id
	// would make it the account's.
	if len(password) > maxBcryptPassword {
		return false, false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(password)) == nil, true
}

// maxBcryptPassword is the longest password bcrypt reads whole, in bytes.
const maxBcryptPassword = 72

// errHash: a password hash that is neither argon2id nor bcrypt.
var errHash = errors.New("not an argon2id or bcrypt hash")

func decodeArgon2(hash string) (Argon2, []byte, []byte, error) {
	var params Argon2
	parts := strings.Split(hash, "$")
	if len(parts) != 6 || parts[1] != "argon2id" || parts[2] != fmt.Sprintf("v=%d", argon2.Version) {
		return params, nil, nil, errHash
	}
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &params.Memory, &params.Time, &params.Threads); err != nil || params.check() != nil {
		return params, nil, nil, errHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(parts[4])
	if err != nil || len(salt) < 8 {
		return params, nil, nil, errHash
	}
	key, err := base64.RawStdEncoding.DecodeString(parts[5])
	if err != nil || len(key) < 16 || len(key) > 64 {
		return params, nil, nil, errHash
	}
	return params, salt, key, nil
}

// ValidHash reports whether hash is a password hash specguard can check:
// argon2id in the PHC string format, or bcrypt.
func ValidHash(hash string) bool {
	if strings.HasPrefix(hash, "$argon2id$") {
		_, _, _, err := decodeArgon2(hash)
		return err == nil
	}
	_, err := bcrypt.Cost([]byte(hash))
	return err == nil
}
