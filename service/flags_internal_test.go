package service

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/specguard/specguard/internal/speccli"
)

// A flag serve or migrate refuses has been printed, in one line naming the
// command: its error is marked so that Main does not print it again.
func TestBadFlagIsPrintedOnce(t *testing.T) {
	for _, cmd := range []string{"serve", "migrate"} {
		var stderr strings.Builder
		err := Command(context.Background(), App{Name: "svc"}, []string{cmd, "--colour", "red"}, func(string) string { return "" }, nil, io.Discard, &stderr)
		if want := "svc " + cmd + ": flag provided but not defined: -colour (try 'svc " + cmd + " --help')\n"; !errors.Is(err, speccli.ErrReported) || stderr.String() != want {
			t.Errorf("%s --colour: %v, stderr %q; want it marked reported, printed once in one line: %q", cmd, err, stderr.String(), want)
		}
	}
}

// A command line that is wrong otherwise (an unknown command, an argument
// a command does not take) is a usage error too: Main exits 2 for it, as
// the specguard command does, not 1 as for a service that failed.
func TestWrongCommandLineIsAUsageError(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"serve", "extra"}, {"migrate", "extra"}} {
		err := Command(context.Background(), App{Name: "svc"}, args, func(string) string { return "" }, nil, io.Discard, io.Discard)
		if !errors.Is(err, speccli.ErrUsage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
}
