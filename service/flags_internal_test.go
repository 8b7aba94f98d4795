package service

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/specguard/specguard/internal/speccli"
)

// A flag serve or migrate refuses has been printed, with the usage, by the
// flag package: its error is marked so that Main does not print it again.
func TestBadFlagIsPrintedOnce(t *testing.T) {
	for _, cmd := range []string{"serve", "migrate"} {
		var stderr strings.Builder
		err := Command(context.Background(), App{Name: "svc"}, []string{cmd, "--colour", "red"}, func(string) string { return "" }, nil, io.Discard, &stderr)
		if !errors.Is(err, speccli.ErrReported) || strings.Count(stderr.String(), "flag provided but not defined: -colour") != 1 {
			t.Errorf("%s --colour: %v, stderr %q; want it marked reported, printed once", cmd, err, stderr.String())
		}
	}
}
