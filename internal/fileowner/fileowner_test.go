//go:build unix

package fileowner

import (
	"io/fs"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// ownedBy is a file's FileInfo as stat gives it, owned by uid.
type ownedBy uint32

func (ownedBy) Name() string       { return "key.pem" }
func (ownedBy) Size() int64        { return 0 }
func (ownedBy) Mode() fs.FileMode  { return 0o600 }
func (ownedBy) ModTime() time.Time { return time.Time{} }
func (ownedBy) IsDir() bool        { return false }
func (o ownedBy) Sys() any         { return &syscall.Stat_t{Uid: uint32(o)} }

func TestCheck(t *testing.T) {
	me := os.Geteuid()
	other := 4242
	if other == me {
		other++
	}
	for _, c := range []struct {
		uid  int
		fail bool
	}{{me, false}, {0, false}, {other, true}} {
		err := Check("/etc/key.pem", ownedBy(c.uid), "read the private key")
		if (err != nil) != c.fail {
			t.Errorf("a file owned by uid %d (this process: uid %d): %v, want refused %v", c.uid, me, err, c.fail)
		}
		if err != nil && !strings.Contains(err.Error(), "/etc/key.pem: owned by uid 4242") {
			t.Errorf("error %q does not name the file and its owner", err)
		}
	}
}
