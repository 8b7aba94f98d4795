package service_test

import (
	"context"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/specguard/specguard/service"
)

// A value with the quotes or blanks of an env file around it (docker run
// --env-file keeps quotes: SPECGUARD_DATA_DIR="/data") is refused, naming
// the variable. Taken as it was, the data directory was a relative path
// under the working directory (`"/data"`, ` /data`), and the database and
// signing key were written there, off the volume, lost with the container.
func TestQuotedOrPaddedValuesRefused(t *testing.T) {
	for _, c := range []struct{ name, value string }{
		{"SPECGUARD_DATA_DIR", `"%s"`},
		{"SPECGUARD_DATA_DIR", ` %s`},
		{"SPECGUARD_ISSUER", `"specguard"`},
		{"SPECGUARD_ISSUER", `specguard `},
		{"SPECGUARD_REDIS_URL", `'redis://:s3cret@127.0.0.1:1/0'`},
	} {
		t.Run(c.name+" "+c.value, func(t *testing.T) {
			wd := t.TempDir()
			t.Chdir(wd)
			data := t.TempDir()
			env := map[string]string{"SPECGUARD_DATA_DIR": data, "SPECGUARD_ADMIN_ADDR": "off"}
			env[c.name] = strings.ReplaceAll(c.value, "%s", data)
			srv, err := service.Build(context.Background(), testApp(), nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
			if err == nil {
				srv.Close()
				entries, _ := os.ReadDir(wd)
				var left []string
				for _, e := range entries {
					left = append(left, e.Name())
				}
				t.Fatalf("%s=%s accepted (Build started; written in the working directory: %q); want it refused naming %s", c.name, env[c.name], left, c.name)
			}
			if !strings.HasPrefix(err.Error(), c.name+": ") || strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%s=%s: %v, want an error naming %s, and no secret", c.name, env[c.name], err, c.name)
			}
		})
	}
}
