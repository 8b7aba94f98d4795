package oidc

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/json"
	"slices"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"

	"github.com/specguard/specguard/policy"
)

// FuzzJWKS: whatever a provider's key set holds, only asymmetric public
// keys come out of the parsing and filtering a token is verified against
// (an "oct" key would let a forged HMAC token pass).
func FuzzJWKS(f *testing.F) {
	for _, s := range []string{
		`{"keys":[{"kty":"RSA","kid":"a","alg":"RS256","n":"sXchDaQebHnPiGvyDOAT4saGEUetSyo9MKLOoWFsueri23bOdgWp4Dy1WlUzewbgBHod5pcM9H95GQRV3JDXboIRROSBigeC5yjU1hGzHHyXss8UDprecbAYxknTcQkhslANGRUZmdTOQ5qTRsLAt6BTYuyvVRdhS8exSZEy_c4gs_7svlJJQ4H9_NxsiIoLwAEk7-Q3UXERGYw_75IDrGA84-lA_-Ct4eTlXHBIY2EaV7t7LjJaynVJCpkv4LKjTTAumiGUIuQhrNhZLuF_RJLqHpM2kgWFLU7-VTdL1VbC2tejvcI2BlMkEpk1BzBZI0KQB0GaDWFLN-aEAw3vRw","e":"AQAB"}]}`,
		`{"keys":[{"kty":"oct","kid":"h","k":"c2VjcmV0LXNlY3JldC1zZWNyZXQtc2VjcmV0LXNlY3JldA"}]}`,
		`{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","use":"enc"}]}`,
		`{"keys":[{"kty":"RSA","n":"","e":""}]}`,
		`{"keys":null}`, `[]`, `{`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		var set jwkset.JWKSMarshal
		if json.Unmarshal(data, &set) != nil {
			return
		}
		for _, m := range set.Keys {
			jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{Private: true}, jwkset.JWKValidateOptions{})
			if err != nil {
				continue
			}
			key := jwk.Key()
			if pk, ok := key.(interface{ Public() crypto.PublicKey }); ok {
				key = pk.Public()
			}
			got, err := publicKeys(key)
			if err != nil {
				continue
			}
			switch got.(type) {
			case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			default:
				t.Fatalf("key of type %T (kty %s) passed the filter", got, m.KTY)
			}
		}
	})
}

// FuzzIntrospection: an introspection answer admits a token only when it
// is a JSON object whose active is the boolean true and whose aud names
// the scheme's audience; anything unreadable is an error (undecided),
// never an admission.
func FuzzIntrospection(f *testing.F) {
	for _, s := range []string{
		`{"active":true,"sub":"u","aud":"api","scope":"a b","exp":4102444800}`,
		`{"active":true,"client_id":"c","aud":["x","api"]}`,
		`{"active":"true","sub":"u","aud":"api"}`,
		`{"active":1,"sub":"u","aud":"api"}`,
		`{"active":true,"sub":"u","aud":"api","exp":"4102444800"}`,
		`{"active":true,"sub":"u","aud":"api","iss":"https://evil"}`,
		`{"active":false}`, `{"active":true}`, `null`, `[]`, `{"active":true,"sub":"u","aud":"api"}{"x":1}`,
	} {
		f.Add([]byte(s))
	}
	scheme := &policy.Scheme{Name: "partner", Type: policy.SchemeOIDC, Provider: &policy.Provider{Audience: []string{"api"}}}
	cfg := &oidcConfig{leeway: time.Minute, introspectTTL: time.Minute, negativeTTL: 5 * time.Second}
	p := &oidcProvider{scheme: scheme, cfg: cfg}
	st := &providerState{issuers: []string{"https://id.example"}}
	now := time.Unix(1_800_000_000, 0)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := p.parseIntrospection(data, st, now)
		if err != nil || e.p == nil {
			return
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.UseNumber()
		var m map[string]any
		if dec.Decode(&m) != nil {
			t.Fatalf("admitted an answer that is not a JSON object: %q", data)
		}
		if m["active"] != true {
			t.Fatalf("admitted without active: true: %q", data)
		}
		if !audienceMatches(m["aud"], []string{"api"}) {
			t.Fatalf("admitted another audience: %q", data)
		}
		if iss, ok := m["iss"]; ok && !slices.Contains(st.issuers, iss.(string)) {
			t.Fatalf("admitted another issuer: %q", data)
		}
		if !e.until.After(now) {
			t.Fatalf("admitted an entry already expired: %q", data)
		}
		if e.p.Subject == "partner:" {
			t.Fatalf("admitted without a subject: %q", data)
		}
	})
}
