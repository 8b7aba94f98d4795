// Package docs serves the interactive API documentation (Swagger UI, its
// assets embedded in the binary: nothing is fetched at run time) and the
// compiled policy matrix, under /docs.
//
//	/docs/             Swagger UI for the served spec
//	/docs/openapi.yaml the served spec
//	/docs/policy       who may call each operation, and how often
//	/docs/assets/...   Swagger UI's script and stylesheet (swagger-ui-dist, pinned in package.json)
package docs

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"html/template"
	"io/fs"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/specguard/specguard/policy"
)

//go:embed assets index.html init.js policy.html policy.css
var files embed.FS

// csp admits only this origin's scripts: the page's own code is in init.js,
// not inline. Swagger UI sets inline styles, and data: images for icons.
const csp = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; " +
	"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"

var policyPage = template.Must(template.ParseFS(files, "policy.html"))

// New returns the handler of /docs and everything under it. spec is the
// document served (the one table was compiled from).
func New(table *policy.Table, spec []byte) (http.Handler, error) {
	var page bytes.Buffer
	if err := policyPage.Execute(&page, policyView(table)); err != nil {
		return nil, err
	}
	assets, err := fs.Sub(files, "assets")
	if err != nil {
		return nil, err
	}
	index, err := files.ReadFile("index.html")
	if err != nil {
		return nil, err
	}
	initJS, _ := files.ReadFile("init.js")
	css, _ := files.ReadFile("policy.css")

	mux := http.NewServeMux()
	static := func(body []byte, contentType string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", contentType)
			w.Header().Set("Cache-Control", "no-cache")
			http.ServeContent(w, r, "", startTime, bytes.NewReader(body))
		}
	}
	mux.Handle("GET /docs", http.RedirectHandler("/docs/", http.StatusMovedPermanently))
	mux.Handle("GET /docs/{$}", static(index, "text/html; charset=utf-8"))
	mux.Handle("GET /docs/init.js", static(initJS, "text/javascript; charset=utf-8"))
	mux.Handle("GET /docs/openapi.yaml", static(spec, "application/yaml"))
	mux.Handle("GET /docs/policy", static(page.Bytes(), "text/html; charset=utf-8"))
	mux.Handle("GET /docs/policy.css", static(css, "text/css; charset=utf-8"))
	etags, err := etagsOf(assets)
	if err != nil {
		return nil, err
	}
	mux.Handle("GET /docs/assets/", http.StripPrefix("/docs/assets/", cacheFor(http.FileServerFS(assets), etags)))
	return secureHeaders(mux), nil
}

// etagsOf returns an ETag of each file of assets, by path: a hash of its
// content. Embedded files have no modification time, so without one a
// browser told no-cache fetched Swagger UI's 1.7 MB again on every page.
func etagsOf(assets fs.FS) (map[string]string, error) {
	etags := map[string]string{}
	err := fs.WalkDir(assets, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := fs.ReadFile(assets, path)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		etags[path] = `"` + hex.EncodeToString(sum[:12]) + `"`
		return nil
	})
	return etags, err
}

func cacheFor(h http.Handler, etags map[string]string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "" || strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // files only, no directory listing
			return
		}
		// The assets change only with the binary; revalidate rather than
		// trust, by their content (If-None-Match: 304).
		w.Header().Set("Cache-Control", "no-cache")
		if etag, ok := etags[r.URL.Path]; ok {
			w.Header().Set("ETag", etag)
		}
		h.ServeHTTP(w, r)
	})
}

func secureHeaders(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		next.ServeHTTP(w, r)
	})
}

// row is one operation in the policy page.
type row struct {
	policy.Route
	Class  string   // public, optional or protected: the row's colour
	Limits []string // tier summaries, or "unlimited"
}

type view struct {
	Title     string
	Rows      []row
	Roles     []roleView
	Providers []providerView
}

type providerView struct {
	Name    string
	Accepts string
}

type roleView struct {
	Name   string
	Scopes string
}

func policyView(t *policy.Table) view {
	v := view{Title: "specguard policy"}
	if t.Doc.Info != nil && t.Doc.Info.Title != "" {
		v.Title = t.Doc.Info.Title + ": policy"
	}
	for _, r := range t.Routes() {
		rw := row{Route: r, Class: string(r.Access)}
		for _, l := range r.Limits {
			rw.Limits = append(rw.Limits, l.Summary)
		}
		if len(rw.Limits) == 0 {
			rw.Limits = []string{"unlimited"}
		}
		v.Rows = append(v.Rows, rw)
	}
	for _, s := range t.Providers() {
		v.Providers = append(v.Providers, providerView{Name: s.Name, Accepts: s.Provider.String()})
	}
	for _, name := range sortedKeys(t.Roles) {
		v.Roles = append(v.Roles, roleView{Name: name, Scopes: strings.Join(t.Roles[name], " ")})
	}
	return v
}

// startTime is the Last-Modified of the pages: they change only with a
// restart.
var startTime = time.Now()

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
