package service

// Signing keys: SPECGUARD_SIGNING_KEY_FILE, SPECGUARD_VERIFY_KEY_FILES, or
// the development key in the data directory.

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/specguard/specguard/security/tokens"
)

// sharedStore names the setting that makes instances share state, when
// one does: then a key made here would differ from every other instance's.
func sharedStore(cfg *Config) string {
	switch {
	case cfg.RedisURL != "":
		return "SPECGUARD_REDIS_URL"
	case strings.HasPrefix(cfg.DatabaseURL, "postgres://"), strings.HasPrefix(cfg.DatabaseURL, "postgresql://"):
		return "a PostgreSQL SPECGUARD_DATABASE_URL"
	}
	return ""
}

// signingKey loads SPECGUARD_SIGNING_KEY_FILE, or the dev key in the data
// directory, generating it on first use.
func signingKey(cfg *Config) (*tokens.Key, error) {
	if k, err := configuredKey(cfg); k != nil || err != nil {
		return k, err
	}
	return devKey(cfg)
}

// configuredKey reads SPECGUARD_SIGNING_KEY_FILE, or refuses its absence
// where instances share state; nil, nil when the development key is to
// be used (devKey). It writes nothing: a start it refuses leaves nothing.
func configuredKey(cfg *Config) (*tokens.Key, error) {
	if cfg.SigningKeyFile != "" {
		k, err := tokens.ReadKeyFile(cfg.SigningKeyFile)
		if err != nil {
			return nil, fmt.Errorf("SPECGUARD_SIGNING_KEY_FILE: %v", err)
		}
		if !k.CanSign() {
			return nil, fmt.Errorf("SPECGUARD_SIGNING_KEY_FILE: %s: a public key cannot sign; give the private key", cfg.SigningKeyFile)
		}
		return k, nil
	}
	if shared := sharedStore(cfg); shared != "" {
		return nil, fmt.Errorf("SPECGUARD_SIGNING_KEY_FILE: required with %s: every instance sharing it must sign with the same key; make one with `specguard keygen --out signing-key.pem`", shared)
	}
	return nil, nil
}

// devKey is the development setup's signing key, in the data dir: made
// there by the first start.
func devKey(cfg *Config) (*tokens.Key, error) {
	path := devKeyPath(cfg.DataDir)
	k, err := existingDevKey(cfg)
	if k != nil || err != nil {
		return k, err
	}
	if k, err = tokens.GenerateKey(); err != nil {
		return nil, err
	}
	pemBytes, err := k.MarshalPEM()
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("SPECGUARD_DATA_DIR: %v", err)
	}
	// Written whole to a file of its own and then linked into place, which
	// fails when the key exists: instances starting at once all use the
	// one key that won, and none reads a file still being written.
	switch won, err := publish(path, pemBytes); {
	case err != nil:
		return nil, fmt.Errorf("SPECGUARD_DATA_DIR: %v", err)
	case !won:
		return tokens.ReadKeyFile(path)
	}
	return k, nil
}

// canCreate says why dir could not be made, leaving nothing behind: in
// the nearest of it and its parents that exists, a directory is made and
// removed again (a read-only file system, a mode, /proc refuse it).
func canCreate(dir string) error {
	for d := filepath.Clean(dir); ; {
		fi, err := os.Stat(d)
		switch {
		case err == nil && !fi.IsDir():
			return fmt.Errorf("cannot create %s: %s is not a directory", dir, d)
		case err == nil:
			probe, err := os.MkdirTemp(d, ".specguard-probe-")
			if err != nil {
				return fmt.Errorf("cannot create %s: %v", dir, err)
			}
			return os.Remove(probe)
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		parent := filepath.Dir(d)
		if parent == d {
			return err
		}
		d = parent
	}
}

// existingDevKey is the dev key of cfg's data directory, nil when there is
// none yet; an error names the file (one other users may read, say).
func existingDevKey(cfg *Config) (*tokens.Key, error) {
	path := devKeyPath(cfg.DataDir)
	k, err := tokens.ReadKeyFile(path)
	switch {
	case err == nil:
		return k, nil
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	}
	return nil, fmt.Errorf("SPECGUARD_DATA_DIR: %v", err)
}

// publish creates path holding data, durably, unless path exists: then it
// leaves it and reports won false. Nothing else ever sees path partly
// written, except on a file system without hard links, where it falls
// back to writing in place (writeExclusive): there an instance starting
// at the very same moment may read it short, and fails to start.
func publish(path string, data []byte) (won bool, err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return false, err
	}
	tmp := f.Name()
	defer os.Remove(tmp)
	if _, err := f.Write(data); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return false, err
	}
	if err := f.Close(); err != nil {
		return false, err
	}
	switch err := link(tmp, path); {
	case errors.Is(err, fs.ErrExist):
		return false, nil
	case err != nil:
		// A file system without hard links (FAT, some network mounts):
		// created exclusively and written in place, as before.
		return writeExclusive(path, data)
	}
	// The new name lasts through a crash once the directory is synced;
	// where that is not offered (Windows, some network file systems) the
	// key is in place all the same.
	if runtime.GOOS != "windows" {
		if d, err := os.Open(dir); err == nil {
			_ = d.Sync()
			d.Close()
		}
	}
	return true, nil
}

// link is os.Link; tests replace it to play a file system without hard
// links.
var link = os.Link

// writeExclusive creates path holding data unless it exists (won false).
func writeExclusive(path string, data []byte) (won bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		return false, nil
	} else if err != nil {
		return false, err
	}
	if _, err = f.Write(data); err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return false, err
	}
	return true, nil
}
