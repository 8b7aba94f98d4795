package e2e

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/internal/keytest"
)

// `specguard conform` passes against the real binary, on the memory store
// and on Redis, with the credentials file make conform uses.
func TestConformAgainstTheBinary(t *testing.T) {
	for _, store := range []string{"memory", "redis"} {
		t.Run(store, func(t *testing.T) {
			var env []string
			if store == "redis" {
				env = []string{"SPECGUARD_REDIS_URL=" + Redis(t), "SPECGUARD_SIGNING_KEY_FILE=" + keytest.File(t)}
			}
			in := Start(t, append(env, "SPECGUARD_LOG_REQUESTS=false")...)
			cmd := exec.Command(toolkit, "conform", "--base", in.Base, "--spec", "../api/openapi.yaml", "--credentials", "../api/conform.yaml", "--format", "json")
			var stderr strings.Builder
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			var rep conform.Report
			if jerr := json.Unmarshal(out, &rep); jerr != nil {
				t.Fatalf("conform: %v; output is not a JSON report: %v\n%s%s", err, jerr, out, stderr.String())
			}
			for _, r := range rep.Results {
				if r.Verdict == conform.Fail {
					t.Errorf("%s %s (%s) %s: %s", r.Method, r.Path, r.Operation, r.Case, r.Detail)
				}
			}
			if err != nil || rep.Failed != 0 || rep.Passed < len(rep.Results)/2 {
				t.Errorf("conform: exit %v, %d passed, %d failed, %d skipped", err, rep.Passed, rep.Failed, rep.Skipped)
			}
			// The families that take more than one request run too.
			for _, family := range []string{"owner:", "revoked:", "response"} {
				ran := false
				for _, r := range rep.Results {
					ran = ran || strings.HasPrefix(r.Case, family) && r.Verdict == conform.Pass
				}
				if !ran {
					t.Errorf("no %s case passed", family)
				}
			}
		})
	}
}
