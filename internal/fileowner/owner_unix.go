//go:build unix

package fileowner

import (
	"io/fs"
	"os"
	"syscall"
)

func owner(fi fs.FileInfo) (uid, euid int, ok bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return 0, 0, false
	}
	return int(st.Uid), os.Geteuid(), true
}
