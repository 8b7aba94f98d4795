package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/specguard/specguard/internal/speccli"
	"github.com/specguard/specguard/security/tokens"
)

var keygenUsage = `Usage: specguard keygen [--alg ed25519|es256|rs256|hs256] [--out FILE]

Makes a new token signing key in the form SPECGUARD_SIGNING_KEY_FILE reads
(PEM: PKCS#8 "PRIVATE KEY", or "HMAC KEY" for hs256). With --out the key is
written to FILE with mode 0600 (an existing file is never overwritten) and
the key id and public JWK are printed on stdout; without --out the PEM goes to
stdout and the key id and JWK to stderr. An hs256 secret has no public JWK:
it is never published.

Algorithms: ed25519 (EdDSA, the default), es256 (ECDSA P-256), rs256 (RSA
3072), hs256 (a 32-byte HMAC secret).

Examples:
  specguard keygen --out signing.pem
  specguard keygen --alg es256 --out /etc/specguard/signing.pem
`

func keygen(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("keygen", keygenUsage)
	alg := fs.String("alg", "ed25519", "key algorithm: "+strings.Join(tokens.KeyAlgorithms, ", "))
	out := fs.String("out", "", "file to write the private key to (mode 0600); stdout when not given")
	if err := speccli.ParseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	// An --out given empty (an unset variable) is no request for stdout: a
	// private key printed where a file was meant lands in logs.
	outGiven := false
	fs.Visit(func(f *flag.Flag) { outGiven = outGiven || f.Name == "out" })
	if outGiven && *out == "" {
		return usageErr("--out is empty: give a file (without --out, the key goes to stdout)")
	}
	key, err := tokens.GenerateKeyFor(*alg)
	if err != nil {
		return usageErr("--alg: %v", err)
	}
	pem, err := key.MarshalPEM()
	if err != nil {
		return err
	}
	if ctx.Err() != nil {
		// Interrupted while the key was made (an RSA key takes a while):
		// none is written. Once written, its kid is said, whatever comes.
		return errors.New("keygen: interrupted; no key was written")
	}
	info := stderr
	if *out == "" {
		if _, err := stdout.Write(pem); err != nil {
			return err
		}
	} else {
		if err := writeNew(*out, pem); err != nil {
			return err
		}
		info = stdout
	}
	description := map[string]any{"kid": key.ID, "alg": key.Algorithm()}
	if jwk := key.JWK(); jwk != nil {
		description["jwk"] = jwk
	}
	if *out != "" {
		description["file"] = *out
	}
	enc := json.NewEncoder(info)
	enc.SetIndent("", "  ")
	if err := enc.Encode(description); err != nil {
		if *out != "" {
			// Unsaid, the key's kid is unknown, and the file would stop
			// the next run: a failed run leaves nothing behind.
			os.Remove(*out)
			return fmt.Errorf("%v (%s was not kept)", err, *out)
		}
		return err
	}
	return nil
}

// writeNew writes data to a file that must not exist yet, readable by its
// owner only. A failed write leaves no file behind.
func writeNew(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("--out: %v", err)
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("--out: %v", err)
	}
	return nil
}
