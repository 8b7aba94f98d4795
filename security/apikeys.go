package security

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/specguard/specguard/policy"
)

// APIKeyPrefix starts every key, so leaked keys are easy to scan for.
const APIKeyPrefix = "sg_"

// APIKeyService creates API keys and authenticates apiKey-in-header schemes.
// A key reads sg_<subject>.<id>.<secret>: subject and id find the record,
// the secret is compared in constant time with the stored SHA-256 hash.
type APIKeyService struct {
	Store Store
	// TTL is how long a key lives (DefaultAPIKeyTTL when zero).
	TTL time.Duration
}

// DefaultAPIKeyTTL is the lifetime of an API key when none is configured.
const DefaultAPIKeyTTL = 365 * 24 * time.Hour

var _ Authenticator = APIKeyService{}

// Create makes a key for subject holding scopes and returns the full key,
// which is not stored and cannot be shown again.
func (s APIKeyService) Create(ctx context.Context, subject, name string, scopes []string) (string, *APIKey, error) {
	secret := make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return "", nil, err
	}
	id := NewID()
	full := APIKeyPrefix + subject + "." + id + "." + base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256(secret)
	k := &APIKey{ID: id, Subject: subject, Name: name, Prefix: APIKeyPrefix + id[:8],
		Scopes: slices.Sorted(slices.Values(scopes)), SecretHash: sum[:], Expires: time.Now().Add(cmp.Or(s.TTL, DefaultAPIKeyTTL))}
	if err := s.Store.CreateKey(ctx, k); err != nil {
		return "", nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return full, k, nil
}

// Authenticate implements Authenticator for the header named scheme.Param.
func (s APIKeyService) Authenticate(ctx context.Context, r *http.Request, scheme *policy.Scheme) (*Principal, error) {
	values := r.Header.Values(scheme.Param)
	switch len(values) {
	case 0:
		return nil, nil
	case 1:
	default:
		return nil, fmt.Errorf("%w: more than one %s header", ErrMalformed, scheme.Param)
	}
	rest, isKey := strings.CutPrefix(values[0], APIKeyPrefix)
	subject, id, secret, ok := splitCredential(rest)
	if !isKey || !ok {
		return nil, fmt.Errorf("%w: not a specguard API key", ErrInvalid)
	}
	k, err := s.Store.Key(ctx, subject, id)
	if err := checkSecret(err, secret, func() []byte { return k.SecretHash }, "unknown or revoked API key"); err != nil {
		return nil, err
	}
	return &Principal{Subject: k.Subject, Scopes: k.Scopes, KeyID: k.ID}, nil
}
