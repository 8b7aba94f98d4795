// Package fileowner tells whether a file handed to the service (a key
// file, a users file) belongs to someone else: its owner may read it and
// replace it whatever its mode says, as ssh's StrictModes knows.
package fileowner

import (
	"fmt"
	"io/fs"
)

// Check returns an error naming path when fi's owner is neither this
// process's effective user nor root; what means what the owner could do
// ("read the private key"). It checks nothing where files have no Unix
// owner (Windows).
func Check(path string, fi fs.FileInfo, what string) error {
	uid, euid, ok := owner(fi)
	if !ok || uid == 0 || uid == euid {
		return nil
	}
	return fmt.Errorf("%s: owned by uid %d, which may %s whatever its mode, and is neither this process's user (uid %d) nor root; chown it", path, uid, what, euid)
}
