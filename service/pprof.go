package service

import (
	"fmt"
	"net/http"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"strconv"
	"strings"
	"time"

	"github.com/specguard/specguard/internal/redact"
)

// servePprof serves runtime/pprof's profiles under /debug/pprof/ as
// net/http/pprof does (go tool pprof reads them), without importing it:
// its init registers the same handlers, cmdline unredacted, on
// http.DefaultServeMux, which a program linking this package may serve.
// Not served: the symbol endpoint (profiles carry their symbols) and
// delta profiles (?seconds= on a named profile).
func servePprof(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("X-Content-Type-Options", "nosniff")
	// go tool pprof prints the text of an error answer carrying it.
	w.Header().Set("X-Go-Pprof", "1")
	name := strings.TrimPrefix(r.URL.Path, "/debug/pprof/")
	switch name {
	case "":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		for _, p := range pprof.Profiles() {
			fmt.Fprintf(w, "%s (%d): /debug/pprof/%s?debug=1\n", p.Name(), p.Count(), p.Name())
		}
		fmt.Fprint(w, "profile: /debug/pprof/profile?seconds=30 (CPU)\ntrace: /debug/pprof/trace?seconds=1\ncmdline: /debug/pprof/cmdline\n")
		return
	case "cmdline":
		redactedCmdline(w, r)
		return
	case "profile", "trace":
		seconds := 30.0
		if name == "trace" {
			seconds = 1
		}
		if s := r.FormValue("seconds"); s != "" {
			v, err := strconv.ParseFloat(s, 64)
			if err != nil || !(v > 0 && v <= maxPprofSeconds) { // NaN too
				http.Error(w, fmt.Sprintf("seconds: %q is not a number above 0 and at most %d", s, maxPprofSeconds), http.StatusBadRequest)
				return
			}
			seconds = v
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
		start, stop := pprof.StartCPUProfile, pprof.StopCPUProfile
		if name == "trace" {
			start, stop = trace.Start, trace.Stop
		}
		if err := start(w); err != nil {
			w.Header().Del("Content-Disposition")
			http.Error(w, "could not start: "+err.Error(), http.StatusInternalServerError)
			return
		}
		select {
		case <-time.After(time.Duration(seconds * float64(time.Second))):
		case <-r.Context().Done():
		}
		stop()
		return
	}
	p := pprof.Lookup(name)
	if p == nil {
		http.Error(w, "unknown profile: "+name, http.StatusNotFound)
		return
	}
	if r.FormValue("seconds") != "" {
		http.Error(w, "delta profiles (seconds=) are not served: take two and compare them (go tool pprof -diff_base)", http.StatusBadRequest)
		return
	}
	debug, _ := strconv.Atoi(r.FormValue("debug"))
	if name == "heap" && r.FormValue("gc") != "" {
		runtime.GC()
	}
	if debug > 0 {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	} else {
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	}
	p.WriteTo(w, debug)
}

// maxPprofSeconds bounds a CPU profile or trace.
const maxPprofSeconds = 300

// redactedCmdline is pprof's cmdline without the secrets of URLs given
// as flags (--redis-url redis://:secret@..., --database-url
// postgres://...?password=...).
func redactedCmdline(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	args := make([]string, len(os.Args))
	for i, a := range os.Args {
		args[i] = redact.Arg(a)
	}
	fmt.Fprint(w, strings.Join(args, "\x00"))
}
