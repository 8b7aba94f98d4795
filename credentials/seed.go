package credentials

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"runtime"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/specguard/specguard/internal/fileowner"
	"github.com/specguard/specguard/internal/text"
	"github.com/specguard/specguard/internal/yamldoc"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
)

// SeedAccount is an account to create at start (a users file's entry):
// exactly one of Password and PasswordHash (argon2id or bcrypt).
type SeedAccount struct {
	Email        string `yaml:"email"`
	Password     string `yaml:"password"`
	PasswordHash string `yaml:"password_hash"`
	Role         string `yaml:"role"`
}

// LoadUsers reads a users file: a YAML list of {email, password or
// password_hash, role}, checked against table: roles against its x-roles,
// passwords against the length its register operation asks (see
// ChangePassword). The file holds passwords, or hashes that can be
// attacked offline: one that other users may read, or owned by a user
// other than this process's or root, is refused. Errors name
// the file, the line and what was expected, in the file's own terms.
func LoadUsers(path string, table *policy.Table) ([]SeedAccount, error) {
	roles, rule := table.Roles, passwordRuleOf(credentialOp(table, "register"))
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if fi, err := os.Stat(path); err == nil && runtime.GOOS != "windows" && fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: mode %04o lets other users read its passwords; chmod 600 it", path, fi.Mode().Perm())
	} else if err == nil {
		if err := fileowner.Check(path, fi, "read its passwords"); err != nil {
			return nil, err
		}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	}
	if line, err := yamldoc.Extra(data); err != nil {
		return nil, fmt.Errorf("%s: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))
	} else if line != 0 {
		// Its users would not be seeded, and nothing would say so.
		return nil, fmt.Errorf("%s:%d: %s", path, line, yamldoc.Message)
	}
	const want = "want a list of users, each {email, password or password_hash, role}"
	if len(doc.Content) == 0 {
		return nil, fmt.Errorf("%s: holds no users; %s", path, want)
	}
	list := doc.Content[0]
	if list.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("%s:%d: %s", path, list.Line, want)
	}
	if len(list.Content) == 0 {
		return nil, fmt.Errorf("%s: holds no users; %s", path, want)
	}
	fields := []string{"email", "password", "password_hash", "role"}
	users := make([]SeedAccount, 0, len(list.Content))
	seen := map[string]bool{}
	for i, item := range list.Content {
		where := fmt.Sprintf("%s:%d: user %d", path, item.Line, i+1)
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s: %s", where, want)
		}
		var u SeedAccount
		given := map[string]int{} // field: its line
		for j := 0; j+1 < len(item.Content); j += 2 {
			k, v := item.Content[j], item.Content[j+1]
			name := fieldName(k.Value)
			if v.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s:%d: %s must be a string", path, v.Line, name)
			}
			if line, twice := given[k.Value]; twice {
				// The last would win: a password other than the one the
				// reader saw first.
				return nil, fmt.Errorf("%s:%d: %s is given twice in one user (first at line %d)", path, k.Line, name, line)
			}
			given[k.Value] = k.Line
			switch k.Value {
			case "email":
				u.Email = v.Value
			case "password":
				u.Password = v.Value
			case "password_hash":
				u.PasswordHash = v.Value
			case "role":
				u.Role = v.Value
			default:
				msg := fmt.Sprintf("%s:%d: %s is not a field of a user (want %s)", path, k.Line, name, strings.Join(fields, ", "))
				if near := text.Nearest(k.Value, fields, 2); near != "" && name == k.Value {
					msg = fmt.Sprintf("%s:%d: %s is not a field of a user; did you mean %s?", path, k.Line, name, near)
				}
				return nil, errors.New(msg)
			}
		}
		switch {
		case u.Email == "":
			return nil, fmt.Errorf("%s: email is missing", where)
		case strings.ContainsAny(u.Email, " \t"):
			// {email: a@example.com password:secret} (a comma missing)
			// is one address: it is not quoted, for it holds the password.
			return nil, fmt.Errorf("%s: email holds a space (not quoted: is a comma missing?)", where)
		case invisible(u.Email):
			return nil, fmt.Errorf("%s: email %q holds an invisible or control character", where, u.Email)
		case seen[EmailKey(u.Email)]:
			return nil, fmt.Errorf("%s: email %s appears twice", where, u.Email)
		case (u.Password == "") == (u.PasswordHash == ""):
			return nil, fmt.Errorf("%s (%s): give exactly one of password and password_hash", where, u.Email)
		case roles[u.Role] == nil:
			return nil, fmt.Errorf("%s (%s): role %q is not declared in the spec's x-roles", where, u.Email, u.Role)
		}
		if u.PasswordHash != "" && !ValidHash(u.PasswordHash) {
			return nil, fmt.Errorf("%s (%s): password_hash is not an argon2id or bcrypt hash", where, u.Email)
		}
		if err := rule.check(u.Password); u.Password != "" && err != nil {
			return nil, fmt.Errorf("%s (%s): the password is %v", where, u.Email, err)
		}
		seen[EmailKey(u.Email)] = true
		users = append(users, u)
	}
	return users, nil
}

// fieldName is a key of a user, as an error may quote it: a key that no
// field's name could be is not quoted, for it may hold the password
// ({password:secret} without a space is one key).
func fieldName(key string) string {
	if len(key) > 32 || strings.IndexFunc(key, func(r rune) bool {
		return r != '_' && r != '-' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9')
	}) >= 0 {
		return "a key (not quoted: is a space missing after a colon?)"
	}
	return key
}

// SeedID derives a seeded account's id from its address, so every
// instance seeded from the same file agrees on it.
func SeedID(email string) string {
	sum := sha256.Sum256([]byte("specguard seed user\x00" + EmailKey(email)))
	return base64.RawURLEncoding.EncodeToString(sum[:16])
}

// hash is the password hash the account of su is created with.
func (s *Service) hash(su SeedAccount) (string, error) {
	if su.Password == "" {
		return su.PasswordHash, nil
	}
	if err := s.passwordRule.check(su.Password); err != nil {
		return "", fmt.Errorf("user %s: the password is %v", su.Email, err)
	}
	h, err := s.passwords.encode(su.Password)
	if err != nil {
		return "", fmt.Errorf("user %s: %v", su.Email, err)
	}
	return h, nil
}

// Seed creates the accounts of users that do not exist yet (ids from
// SeedID). An account that exists is left as it is: the database, not
// the list, is the truth once it holds the account. A list with an entry
// it refuses (as LoadUsers would) creates nothing. log, when not nil, gets
// a line per account created.
func (s *Service) Seed(ctx context.Context, users []SeedAccount, log *slog.Logger) error {
	for i, su := range users {
		// What LoadUsers checks, for a list made in code: an account that
		// could never log in, once made, would be left as it is.
		switch {
		case su.Email == "":
			return fmt.Errorf("user %d: email is missing", i+1)
		case invisible(su.Email):
			return fmt.Errorf("user %d: email %q holds an invisible or control character", i+1, su.Email)
		case (su.Password == "") == (su.PasswordHash == ""):
			return fmt.Errorf("user %s: give exactly one of Password and PasswordHash", su.Email)
		case su.PasswordHash != "" && !ValidHash(su.PasswordHash):
			return fmt.Errorf("user %s: PasswordHash is not an argon2id or bcrypt hash", su.Email)
		case !s.roleGrants(su.Role):
			return fmt.Errorf("user %s: role %q is not declared in the spec's x-roles", su.Email, su.Role)
		}
		if err := s.passwordRule.check(su.Password); su.Password != "" && err != nil {
			return fmt.Errorf("user %s: the password is %v", su.Email, err)
		}
	}
	for _, su := range users {
		if _, err := s.accounts.AccountByEmail(ctx, su.Email); err == nil {
			continue
		} else if !errors.Is(err, security.ErrNotFound) {
			return fmt.Errorf("seeding user %s: %v", su.Email, err)
		}
		hash, err := s.hash(su)
		if err != nil {
			return err
		}
		created, err := s.accounts.EnsureAccount(ctx, &Account{ID: SeedID(su.Email), Email: su.Email, Role: su.Role, PasswordHash: hash})
		if err != nil {
			return fmt.Errorf("seeding user %s: %v", su.Email, err)
		}
		if created && log != nil {
			log.Info("seeded user", "email", su.Email, "role", su.Role)
		}
	}
	return nil
}

// Retire ends the published accounts (demo accounts whose passwords
// anyone may read) that still have their published password, where they
// must not be used: each is disabled, so every credential it holds stops
// working on every instance; one that keep names (a users file's entry)
// gets keep's password and role instead, enabled, its old credentials
// ended all the same, unless keep asks for the published password itself.
// An address of published whose password was changed is a real account
// and is left alone. Each account retired is logged to log, or, when it
// is nil, to the service's logger (WithLog).
func (s *Service) Retire(ctx context.Context, published, keep []SeedAccount, log *slog.Logger) error {
	if log == nil {
		log = s.cfg.log
	}
	for _, demo := range published {
		a, unchanged, err := s.stillPublished(ctx, demo)
		if err != nil {
			return fmt.Errorf("retiring the demo account %s: %v", demo.Email, err)
		} else if a == nil {
			continue
		}
		i := slices.IndexFunc(keep, func(su SeedAccount) bool { return EmailKey(su.Email) == EmailKey(demo.Email) })
		if i < 0 {
			if a.Disabled {
				continue
			}
			_, err := s.endAllIf(ctx, a.ID, func(a *Account) error { a.Disabled = true; return unchanged(a) })
			if errors.Is(err, errPasswordChanged) {
				continue
			} else if err != nil {
				return fmt.Errorf("disabling the demo account %s: %v", demo.Email, err)
			}
			log.Warn("disabled a demo account that still had its published password", "email", demo.Email)
			continue
		}
		su := keep[i]
		if su.Password != "" && normalized(su.Password) == normalized(demo.Password) || su.PasswordHash != "" && s.passwords.matches(su.PasswordHash, demo.Password) {
			continue // the file asks for this very password
		}
		hash, err := s.hash(su)
		if err != nil {
			return err
		}
		// One change: the password and the end of every credential opened
		// with the published one. Committed apart, a failure between them
		// left the account with a password of its own, so never retired
		// again, and its demo sessions alive.
		_, err = s.endAllIf(ctx, a.ID, func(a *Account) error {
			if err := unchanged(a); err != nil {
				return err
			}
			a.PasswordHash, a.Role, a.Disabled = hash, su.Role, false
			return nil
		})
		if errors.Is(err, errPasswordChanged) {
			continue
		} else if err != nil {
			return fmt.Errorf("giving %s the users file's password and ending its credentials: %v", su.Email, err)
		}
		log.Warn("a demo account still had its published password: it has the users file's password and role now, and its credentials are ended", "email", su.Email, "role", su.Role)
	}
	return nil
}

// Restore enables again the published accounts that are disabled and
// still have their published password: where they may be used (a
// development setup), a start elsewhere that retired them (see Retire)
// must not leave them unusable with nothing said. Nothing tells that
// disable from an admin's, so a published account an admin disabled is
// enabled again too: call it only where the published accounts are to be
// used. What the disable ended stays ended. An address whose password
// was changed is left alone. Each
// account enabled is logged to log, or, when it is nil, to the service's
// logger (WithLog).
func (s *Service) Restore(ctx context.Context, published []SeedAccount, log *slog.Logger) error {
	if log == nil {
		log = s.cfg.log
	}
	for _, demo := range published {
		a, unchanged, err := s.stillPublished(ctx, demo)
		if err != nil {
			return fmt.Errorf("restoring the demo account %s: %v", demo.Email, err)
		} else if a == nil || !a.Disabled {
			continue
		}
		_, err = s.updateIf(ctx, a.ID, func(cur *Account) error { cur.Disabled = false; return unchanged(cur) })
		if errors.Is(err, errPasswordChanged) {
			continue
		} else if err != nil {
			return fmt.Errorf("enabling the demo account %s: %v", demo.Email, err)
		}
		log.Warn("enabled again a demo account that a start outside the development setup had disabled", "email", demo.Email)
	}
	return nil
}

// stillPublished returns the account of demo while it has its published
// password (nil when there is none, or its password was changed), and a
// condition for a change of it: the change holds only while the password
// is still the published one, since one changed meanwhile (its owner's, on
// another instance) makes a real account, left alone. The hash may have
// changed for the same password (a login rehashed it with other
// parameters): only the password counts.
func (s *Service) stillPublished(ctx context.Context, demo SeedAccount) (*Account, func(*Account) error, error) {
	a, err := s.accounts.AccountByEmail(ctx, demo.Email)
	if errors.Is(err, security.ErrNotFound) {
		return nil, nil, nil
	} else if err != nil {
		return nil, nil, err
	}
	if ok, _, err := s.passwords.match(ctx, a.PasswordHash, demo.Password); err != nil || !ok {
		return nil, nil, err
	}
	checked := a.PasswordHash
	return a, func(cur *Account) error {
		if cur.PasswordHash != checked && !s.passwords.matches(cur.PasswordHash, demo.Password) {
			return errPasswordChanged
		}
		return nil
	}, nil
}

// HashPassword hashes password as the service stores it (argon2id, the
// parameters of WithArgon2), for an app that creates accounts itself. It
// refuses a password registration would (see ChangePassword).
func (s *Service) HashPassword(ctx context.Context, password string) (string, error) {
	if err := s.passwordRule.check(password); err != nil {
		return "", fmt.Errorf("credentials: the password is %w", err)
	}
	return s.passwords.hash(ctx, password)
}
