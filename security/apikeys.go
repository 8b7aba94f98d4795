package security

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"

	"github.com/specguard/specguard/policy"
)

// APIKeyPrefix starts every key, so leaked keys are easy to scan for.
const APIKeyPrefix = "sg_"

// APIKeyService creates API keys and authenticates apiKey-in-header schemes.
// A key reads sg_<id>_<secret>: the id finds the record, the secret is
// compared in constant time with the stored SHA-256 hash.
type APIKeyService struct{ Store Store }

var _ Authenticator = APIKeyService{}

// Create makes a key for subject holding scopes and returns the full key,
// which is not stored and cannot be shown again.
func (s APIKeyService) Create(ctx context.Context, subject, name string, scopes []string) (string, *APIKey, error) {
	id := make([]byte, 8)
	secret := make([]byte, 32)
	if _, err := rand.Read(id); err != nil {
		return "", nil, err
	}
	if _, err := rand.Read(secret); err != nil {
		return "", nil, err
	}
	hexID := hex.EncodeToString(id)
	full := APIKeyPrefix + hexID + "_" + base64.RawURLEncoding.EncodeToString(secret)
	sum := sha256.Sum256(secret)
	k := &APIKey{ID: hexID, Subject: subject, Name: name, Prefix: full[:len(APIKeyPrefix)+8],
		Scopes: slices.Sorted(slices.Values(scopes)), SecretHash: sum[:]}
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
	id, secret, err := parseAPIKey(values[0])
	if err != nil {
		return nil, err
	}
	k, err := s.Store.Key(ctx, id)
	if errors.Is(err, ErrNotFound) {
		return nil, fmt.Errorf("%w: unknown or revoked API key", ErrInvalid)
	} else if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	sum := sha256.Sum256(secret)
	if subtle.ConstantTimeCompare(sum[:], k.SecretHash) != 1 {
		return nil, fmt.Errorf("%w: unknown or revoked API key", ErrInvalid)
	}
	return &Principal{Subject: k.Subject, Scopes: k.Scopes, KeyID: k.ID}, nil
}

func parseAPIKey(v string) (id string, secret []byte, err error) {
	rest, ok := strings.CutPrefix(v, APIKeyPrefix)
	if !ok || len(v) > 128 {
		return "", nil, fmt.Errorf("%w: not a specguard API key", ErrInvalid)
	}
	id, enc, ok := strings.Cut(rest, "_")
	if _, herr := hex.DecodeString(id); !ok || len(id) != 16 || herr != nil {
		return "", nil, fmt.Errorf("%w: not a specguard API key", ErrInvalid)
	}
	secret, derr := base64.RawURLEncoding.DecodeString(enc)
	if derr != nil || len(secret) != 32 {
		return "", nil, fmt.Errorf("%w: not a specguard API key", ErrInvalid)
	}
	return id, secret, nil
}
