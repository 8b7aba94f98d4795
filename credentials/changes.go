package credentials

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/security/tokens"
)

// Changes of accounts that every instance enforces at once, and ending
// credentials: the operations' and a service's own code's.

// update changes account id in one database transaction that holds its
// row, and publishes the new state to the store every instance checks
// credentials against before it commits (Accounts.UpdateAccount): when
// the publish fails nothing is committed. The new version passes both the
// database's and the store's (read with the row held), so no version is
// ever reused. When the commit fails after the publish, or the publish
// fails (the store may have applied it all the same), the store is set
// back to what the database holds (and, should that fail too, forgets it
// within security.AccountTTL).
func (s *Service) update(ctx context.Context, id string, change func(*Account)) (*Account, error) {
	return s.updateIf(ctx, id, func(a *Account) error { change(a); return nil })
}

// updateIf is update with a change that may refuse (an error aborts it,
// and is returned).
func (s *Service) updateIf(ctx context.Context, id string, change func(*Account) error) (*Account, error) {
	var published int64
	a, err := s.accounts.UpdateAccount(ctx, id, func(a *Account) error {
		// The store's version is read with the row held: a change that
		// published, then failed to commit, before this one took the row
		// is seen, and its version not taken again. Taken again, that
		// change's repair (republish) would put the old state back over
		// this one's at the same version.
		floor, err := s.state.Floor(ctx, id)
		if err != nil {
			return err
		}
		a.Version = max(a.Version, floor)
		return change(a)
	}, func(a *Account) error {
		// Marked before the call: a publish the store applied but whose
		// answer was lost (a timeout) must be put back too.
		published = a.Version
		return s.state.Publish(ctx, a.ID, accountState(a))
	})
	if err != nil && published != 0 {
		s.republish(id, published)
	}
	return a, err
}

// republish puts the database's state of account id back into the store,
// at version (the one an uncommitted change published, or may have), after
// a publish or a commit that failed.
func (s *Service) republish(id string, version int64) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	a, err := s.accounts.Account(ctx, id)
	if err == nil {
		st := accountState(a)
		st.Version = version
		err = s.state.Publish(ctx, id, st)
	}
	if err != nil {
		s.cfg.log.WarnContext(ctx, "a change of an account may have been published but was not committed, and putting it back failed; the store forgets it within the account TTL",
			"subject", id, "err", err)
	}
}

// endAll ends every credential of subject after change: its account's
// NotBefore moves past every credential minted so far (which every
// instance enforces at the next request), then its token families,
// sessions and API keys are deleted, which only tidies what is already
// dead.
func (s *Service) endAll(ctx context.Context, subject string, change func(*Account)) (*Account, error) {
	return s.endAllIf(ctx, subject, func(a *Account) error { change(a); return nil })
}

// endAllIf is endAll with a change that may refuse (an error aborts it,
// ending nothing, and is returned).
func (s *Service) endAllIf(ctx context.Context, subject string, change func(*Account) error) (*Account, error) {
	a, err := s.updateIf(ctx, subject, func(a *Account) error {
		if err := change(a); err != nil {
			return err
		}
		a.NotBefore = a.Version + 1 // the version this update commits
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.store.RevokeSubject(ctx, subject); err != nil {
		s.cfg.log.WarnContext(ctx, "revoked every credential; tidying the store failed", "subject", subject, "err", err)
	}
	if err := s.keys.RevokeAll(ctx, subject); err != nil {
		s.cfg.log.WarnContext(ctx, "revoked every credential; marking the API keys revoked failed", "subject", subject, "err", err)
	}
	return a, nil
}

// ChangePassword gives account id the password and, in the same change,
// ends every credential it holds (tokens, refresh tokens, browser
// sessions, API keys) on every instance: whoever knew the old password may
// have logged in with it. A password login that raced the change is
// refused. A password shorter than the document's minLength for
// register's password (DefaultMinPassword when it declares none), or
// longer than its maxLength, is refused.
func (s *Service) ChangePassword(ctx context.Context, id, password string) error {
	if err := s.passwordRule.check(password); err != nil {
		return fmt.Errorf("credentials: the new password is %w", err)
	}
	hash, err := s.passwords.hash(ctx, password)
	if err != nil {
		return err
	}
	_, err = s.endAll(ctx, id, func(a *Account) { a.PasswordHash = hash })
	return err
}

// LogoutAll ends every credential of account subject (tokens, refresh
// tokens, browser sessions, API keys) on every instance from the next
// request on.
func (s *Service) LogoutAll(ctx context.Context, subject string) error {
	_, err := s.endAll(ctx, subject, func(*Account) {})
	return err
}

// Disable disables account id: it can no longer log in, and every
// credential it holds stops working on every instance at the next request.
func (s *Service) Disable(ctx context.Context, id string) error {
	_, err := s.endAll(ctx, id, func(a *Account) { a.Disabled = true })
	return err
}

// Enable lets account id log in again; what a disable ended stays ended.
func (s *Service) Enable(ctx context.Context, id string) error {
	_, err := s.update(ctx, id, func(a *Account) { a.Disabled = false })
	return err
}

// SetRole changes the role of account id (one of the document's x-roles):
// every credential it holds keeps only the scopes the new role grants too,
// on every instance at the next request.
func (s *Service) SetRole(ctx context.Context, id, role string) error {
	if !s.roleGrants(role) {
		return errors.New("credentials: role " + role + " is not declared in the document's x-roles")
	}
	_, err := s.update(ctx, id, func(a *Account) { a.Role = role })
	return err
}

// Logout ends the login the principal p authenticated with: its access
// token's (the refresh-token family), its browser session, or both when
// the operation required them together. An API key, a token minted from
// one and an outside provider's token have no login to end: Logout
// returns ErrNoLogin for a principal holding nothing else. One presented
// with a token of a login does not keep that login alive. A nil p (an
// anonymous caller: security.FromContext on an operation open to anyone)
// ends nothing.
func (s *Service) Logout(ctx context.Context, p *security.Principal) error {
	if p == nil {
		return nil // an anonymous caller: nothing to end
	}
	fam, session := loginOf(p), sessionOf(p)
	if fam == "" && session == "" {
		return ErrNoLogin
	}
	if fam != "" {
		if err := s.tokens.Revoke(ctx, p.Subject, fam); err != nil && !errors.Is(err, security.ErrNotFound) {
			return err
		}
	}
	if session != "" {
		if err := s.sessions.Delete(ctx, p.Subject, session); err != nil && !errors.Is(err, security.ErrNotFound) {
			return err
		}
	}
	return nil
}

// ErrNoLogin: Logout was given a credential that has no login to end (an
// API key, a token minted from one, an outside provider's token). Such a
// token ends when it expires or when its key is revoked; nothing was ended.
var ErrNoLogin = errors.New("credentials: the credential has no login to end")

// loginOf returns the login (token family) of the access token p
// presented, or "": no token, or one minted from an API key.
func loginOf(p *security.Principal) string {
	if a := tokens.AccessOf(p); a != nil && a.APIKey() == "" {
		return a.Family()
	}
	return ""
}

// sessionOf returns the id of the cookie session p presented, or "".
func sessionOf(p *security.Principal) string {
	if c := p.Credential(security.KindSession); c != nil {
		return c.ID()
	}
	return ""
}
