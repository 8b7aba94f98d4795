// Package docspage holds where a service (package service) serves its
// docs page, /docs and the paths under it, which it answers before the
// guard: a document may put no operation there. The service refuses such
// a document at start, and `specguard lint` says so first.
package docspage

import (
	"fmt"
	"strings"

	"github.com/specguard/specguard/policy"
)

// Path is the docs page's.
const Path = "/docs"

// Under reports whether p is Path or a path under it.
func Under(p string) bool { return p == Path || strings.HasPrefix(p, Path+"/") }

// Free refuses a document with an operation at /docs or under it: the
// docs page answers those paths before the guard, and the operation would
// never be reached.
func Free(t *policy.Table) error {
	for _, op := range t.Operations() {
		if Under(op.Path) {
			return fmt.Errorf("%s:%d: %s: /docs and the paths under it are the docs page's, which answers them before the guard: give the operation another path", t.Source, op.Line, op)
		}
	}
	return nil
}
