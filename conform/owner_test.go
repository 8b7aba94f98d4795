package conform_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/specguard/specguard/conform"
	"github.com/specguard/specguard/policy"
)

// ownedDoc: things anyone with a key makes, at most one every two seconds
// each, and only their maker deletes.
const ownedDoc = `openapi: 3.0.3
info: {title: t, version: "1"}
security: [{key: []}]
paths:
  /me:
    get:
      operationId: getMe
      x-credential: me
      x-rate-limit: false
      responses: {'200': {description: ok}, '401': {description: no}}
  /things:
    post:
      operationId: addThing
      x-rate-limit: {name: writes, limit: 30, window: 1m, burst: 1, key: principal, who: authenticated}
      requestBody: {required: true, content: {application/json: {schema: {type: object}}}}
      responses: {'201': {description: made}, '401': {description: no}, '429': {description: slow down}}
  /things/{id}:
    delete:
      operationId: deleteThing
      x-owner: true
      x-rate-limit: false
      parameters: [{name: id, in: path, required: true, schema: {type: string}}]
      responses: {'204': {description: gone}, '401': {description: no}, '404': {description: not yours}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
`

// The owner cases make a resource each; a create operation whose tier
// refuses the second for a few seconds is waited for, not counted as a
// reason to skip the case.
func TestOwnerCasesWaitForTheCreateTier(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(ownedDoc))
	if err != nil {
		t.Fatal(err)
	}
	accounts := map[string]string{"k-alice": "alice", "k-bob": "bob"}
	var mu sync.Mutex
	last, owners := map[string]time.Time{}, map[string]string{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := accounts[r.Header.Get("X-API-Key")]
		if who == "" {
			w.Header().Set("WWW-Authenticate", `ApiKey realm="t", header="X-API-Key"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		mu.Lock()
		defer mu.Unlock()
		switch id, _ := strings.CutPrefix(r.URL.Path, "/things/"); {
		case r.URL.Path == "/me":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"id":"` + who + `"}`))
		case r.URL.Path == "/things" && r.Method == http.MethodPost:
			if time.Since(last[who]) < 2*time.Second {
				w.Header().Set("Retry-After", "2")
				w.WriteHeader(http.StatusTooManyRequests)
				return
			}
			last[who] = time.Now()
			id := who + "-" + time.Now().Format("150405.000000000")
			owners[id] = who
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"` + id + `"}`))
		case r.Method == http.MethodDelete && owners[id] == who:
			delete(owners, id)
			w.WriteHeader(http.StatusNoContent)
		case r.Method == http.MethodDelete:
			w.WriteHeader(http.StatusNotFound)
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"owner"},
		Credentials: []conform.Credential{{Name: "alice", Scheme: "key", Value: "k-alice"}, {Name: "bob", Scheme: "key", Value: "k-bob"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range rep.Results {
		got[r.Case] = r.Verdict + " (" + r.Detail + ")"
	}
	for _, name := range []string{"owner:other", "owner:self"} {
		if v := got[name]; !strings.HasPrefix(v, conform.Pass) {
			t.Errorf("%s: %s, want %s", name, v, conform.Pass)
		}
	}
}

// A credentials file whose logins the login operation's tier refuses is
// told so: how many it makes there, and what must give; a first login
// refused says the limit was spent before the run.
func TestCredentialsFileMeetsTheLoginTier(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(ownedDoc))
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	logins := 0
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/login" {
			http.NotFound(w, r)
			return
		}
		if logins++; logins > 1 {
			w.Header().Set("Retry-After", "300")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"key":"k-alice"}`))
	}))
	defer srv.Close()
	from := &conform.Fetch{URL: "/login", Body: map[string]string{"user": "x"}, Field: "key"}
	_, err = conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"owner"},
		Credentials: []conform.Credential{{Name: "alice", Scheme: "key", From: from}, {Name: "bob", Scheme: "key", From: from}}})
	if err == nil || !strings.Contains(err.Error(), "credential 2 (bob): rate limited: POST /login: 429") ||
		!strings.Contains(err.Error(), "makes 2 there, one after another from one address, and 1 went before this one") {
		t.Fatalf("a refused login of the credentials file: %v", err)
	}
	// Refused at its first login, the run did not spend the limit: calls
	// before it did (an earlier run), and the file is not to blame.
	mu.Lock()
	logins = 1
	mu.Unlock()
	_, err = conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{"owner"},
		Credentials: []conform.Credential{{Name: "alice", Scheme: "key", From: from}, {Name: "bob", Scheme: "key", From: from}}})
	if err == nil || !strings.Contains(err.Error(), "credential 1 (alice): rate limited: POST /login: 429") ||
		!strings.Contains(err.Error(), "calls before it spent the limit") || strings.Contains(err.Error(), "makes 2") {
		t.Fatalf("a first login refused: %v", err)
	}
}

// A run interrupted while it waits for a tier stops waiting.
func TestWaitingEndsWithTheRun(t *testing.T) {
	table, err := policy.Compile("spec.yaml", []byte(ownedDoc))
	if err != nil {
		t.Fatal(err)
	}
	accounts := map[string]string{"k-alice": "alice", "k-bob": "bob"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch who := accounts[r.Header.Get("X-API-Key")]; {
		case who == "":
			w.WriteHeader(http.StatusUnauthorized)
		case r.URL.Path == "/me":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"id":"` + who + `"}`))
		default:
			w.Header().Set("Retry-After", "30") // every write, for ever
			w.WriteHeader(http.StatusTooManyRequests)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, _ = conform.Run(ctx, table, conform.Options{Base: srv.URL, Only: []string{"owner"},
		Credentials: []conform.Credential{{Name: "alice", Scheme: "key", Value: "k-alice"}, {Name: "bob", Scheme: "key", Value: "k-bob"}}})
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("the run went on %v after its context ended at 0.5s: it waited out Retry-After", d)
	}
}

// writtenDoc: things with a title, which only their maker edits and
// deletes, and anyone with a key reads.
const writtenDoc = `openapi: 3.0.3
info: {title: t, version: "1"}
security: [{key: []}]
paths:
  /me:
    get:
      operationId: getMe
      x-credential: me
      x-rate-limit: false
      responses: {'200': {description: ok}, '401': {description: no}}
  /things:
    post:
      operationId: addThing
      x-rate-limit: false
      requestBody: {required: true, content: {application/json: {schema: {type: object}}}}
      responses: {'201': {description: made}, '401': {description: no}}
  /things/{id}:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    get:
      operationId: getThing
      x-rate-limit: false
      responses: {'200': {description: it}, '401': {description: no}, '404': {description: none}}
    patch:
      operationId: editThing
      x-owner: true
      x-rate-limit: false
      requestBody: {required: true, content: {application/json: {schema: {type: object, properties: {title: {type: string, maxLength: 100}}}}}}
      responses: {'200': {description: edited}, '401': {description: no}, '404': {description: not yours}}
    delete:
      operationId: deleteThing
      x-owner: true
      x-rate-limit: false
      responses: {'204': {description: gone}, '401': {description: no}, '404': {description: not yours}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-API-Key}
`

// thingsAPI serves the owner tests' things: alice and bob (X-API-Key
// k-alice, k-bob) read GET /me, and POST /things makes t1, t2, ... owned by
// its caller; any other request is rest's, given the caller and the thing
// its path names (/things/{id}, /things/{id}/...; nil when there is none),
// all under one lock.
type thingsAPI struct {
	mu     sync.Mutex
	things map[string]*thing
	n      int
	// named: the things a request named by path (/things/t2), as the
	// owner cases do each one they make, and no case before them does.
	named map[string]bool
}

// thing is one thing: its owner and its title.
type thing struct {
	owner, title string
}

func serveThings(t *testing.T, rest func(w http.ResponseWriter, r *http.Request, who, id string, th *thing, api *thingsAPI)) (*thingsAPI, *httptest.Server) {
	accounts := map[string]string{"k-alice": "alice", "k-bob": "bob"}
	api := &thingsAPI{things: map[string]*thing{}, named: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who := accounts[r.Header.Get("X-API-Key")]
		if who == "" {
			w.Header().Set("WWW-Authenticate", `ApiKey realm="t", header="X-API-Key"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		api.mu.Lock()
		defer api.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.URL.Path == "/me":
			_, _ = w.Write([]byte(`{"id":"` + who + `"}`))
		case r.URL.Path == "/things" && r.Method == http.MethodPost:
			api.n++
			id := "t" + strconv.Itoa(api.n)
			api.things[id] = &thing{owner: who}
			w.WriteHeader(http.StatusCreated)
			_, _ = w.Write([]byte(`{"id":"` + id + `"}`))
		default:
			tail, _ := strings.CutPrefix(r.URL.Path, "/things/")
			id, _, _ := strings.Cut(tail, "/")
			if api.things[id] != nil {
				api.named[id] = true
			}
			rest(w, r, who, id, api.things[id], api)
		}
	}))
	t.Cleanup(srv.Close)
	return api, srv
}

// runOwner runs the owner cases named by only against srv as alice and bob.
func runOwner(t *testing.T, doc string, srv *httptest.Server, only string) map[string]conform.Result {
	t.Helper()
	table := compiled(t, doc)
	rep, err := conform.Run(context.Background(), table, conform.Options{Base: srv.URL, Only: []string{only},
		Credentials: []conform.Credential{{Name: "alice", Scheme: "key", Value: "k-alice"}, {Name: "bob", Scheme: "key", Value: "k-bob"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]conform.Result{}
	for _, r := range rep.Results {
		got[r.Operation+" "+r.Case] = r
	}
	return got
}

// left are the things the owner cases made that are still there: from
// the first thing a request named on (a case that runs before them may
// make one too, but names none).
func (api *thingsAPI) left() []string {
	api.mu.Lock()
	defer api.mu.Unlock()
	var out []string
	owners := false
	for i := 1; i <= api.n; i++ {
		id := "t" + strconv.Itoa(i)
		owners = owners || api.named[id]
		if _, there := api.things[id]; owners && there {
			out = append(out, id)
		}
	}
	return out
}

// owner:other is refused by a server that carries out another account's
// write, then answers 404: the owner reads what the other account wrote
// (an edit), or its resource is gone (a delete).
func TestOwnerOtherSeesAWriteBeforeTheRefusal(t *testing.T) {
	for _, writeFirst := range []bool{false, true} {
		api, srv := serveThings(t, func(w http.ResponseWriter, r *http.Request, who, id string, th *thing, api *thingsAPI) {
			switch {
			case th == nil:
				w.WriteHeader(http.StatusNotFound)
			case r.Method == http.MethodGet:
				b, _ := json.Marshal(map[string]string{"id": id, "title": th.title})
				_, _ = w.Write(b)
			case th.owner != who && !writeFirst:
				w.WriteHeader(http.StatusNotFound)
			default:
				if r.Method == http.MethodDelete {
					delete(api.things, id)
				} else {
					var in struct{ Title string }
					_ = json.NewDecoder(r.Body).Decode(&in)
					th.title = in.Title
				}
				switch {
				case th.owner != who:
					w.WriteHeader(http.StatusNotFound) // checked after the write
				case r.Method == http.MethodDelete:
					w.WriteHeader(http.StatusNoContent)
				default:
					_, _ = w.Write([]byte(`{}`))
				}
			}
		})
		got := runOwner(t, writtenDoc, srv, "owner:other")
		// What the owner cases made, its owner deleted.
		if left := api.left(); !writeFirst && (len(left) > 0 || api.n == 0) {
			t.Errorf("of the %d things made, the owner cases left %v", api.n, left)
		}
		for _, op := range []string{"editThing", "deleteThing"} {
			want := conform.Pass
			if writeFirst {
				want = conform.Fail
			}
			if r := got[op+" owner:other"]; r.Verdict != want {
				t.Errorf("owner:other of %s, the write carried out first %v: %s (%s), want %s", op, writeFirst, r.Verdict, r.Detail, want)
			}
		}
	}
}

// markedDoc: writtenDoc, with an optional link in the edit, which the
// server checks itself.
var markedDoc = strings.NewReplacer(
	"properties: {title: {type: string, maxLength: 100}}", "properties: {title: {type: string, maxLength: 100}, link: {type: string, description: an http(s) URL}}",
	"'404': {description: not yours}}", "'404': {description: not yours}, '422': {description: a link that is no URL}}",
).Replace(writtenDoc)

// A server that checks its body (an optional link must be a URL) before it
// loads the resource refuses the marked body 422; owner:other then sends
// the least body. A correct server passes (helper-109 found it failed as
// "acted on alice's resource"); one that wrote the title before its checks
// fails, the marker looked for after the fallback too (it was not:
// helper-111).
func TestOwnerOtherMarkedBodyRefusedByTheServersOwnChecks(t *testing.T) {
	if !strings.Contains(markedDoc, "link:") || !strings.Contains(markedDoc, "'422'") {
		t.Fatal("markedDoc no longer adds the link to writtenDoc's edit: update it")
	}
	for _, writeFirst := range []bool{false, true} {
		_, srv := serveThings(t, func(w http.ResponseWriter, r *http.Request, who, id string, th *thing, api *thingsAPI) {
			switch {
			case th == nil:
				w.WriteHeader(http.StatusNotFound)
			case r.Method == http.MethodPatch:
				var in struct{ Title, Link *string }
				_ = json.NewDecoder(r.Body).Decode(&in)
				if in.Title != nil && writeFirst {
					th.title = *in.Title // written before any check
				}
				switch {
				case in.Link != nil && !strings.HasPrefix(*in.Link, "http"):
					w.WriteHeader(http.StatusUnprocessableEntity)
				case th.owner != who:
					w.WriteHeader(http.StatusNotFound)
				default:
					_, _ = w.Write([]byte(`{}`))
				}
			case r.Method == http.MethodGet:
				b, _ := json.Marshal(map[string]string{"id": id, "title": th.title})
				_, _ = w.Write(b)
			default:
				w.WriteHeader(http.StatusNotFound)
			}
		})
		want := conform.Pass
		if writeFirst {
			want = conform.Fail
		}
		if r := runOwner(t, markedDoc, srv, "owner:other")["editThing owner:other"]; r.Verdict != want {
			t.Errorf("owner:other of editThing, the title written before the checks %v: %q (%s), want %s", writeFirst, r.Verdict, r.Detail, want)
		}
	}
}

// subDoc: writtenDoc with an owner-only action on a thing, which POST
// /things makes and DELETE /things/{id} deletes.
var subDoc = strings.Replace(writtenDoc, "components:\n", `  /things/{id}/publish:
    parameters: [{name: id, in: path, required: true, schema: {type: string}}]
    post:
      operationId: publishThing
      x-owner: true
      x-rate-limit: false
      responses: {'204': {description: done}, '401': {description: no}, '404': {description: not yours}}
components:
`, 1)

// The owner cases of /things/{id}/publish make things with POST /things;
// they are deleted with DELETE /things/{id} (none was: helper-111).
func TestOwnerCasesDeleteWhatTheyMadeForAnAction(t *testing.T) {
	api, srv := serveThings(t, func(w http.ResponseWriter, r *http.Request, who, id string, th *thing, api *thingsAPI) {
		switch {
		case th == nil || th.owner != who:
			w.WriteHeader(http.StatusNotFound)
		case r.Method == http.MethodDelete:
			delete(api.things, id)
			w.WriteHeader(http.StatusNoContent)
		default:
			w.WriteHeader(http.StatusNoContent)
		}
	})
	if r := runOwner(t, subDoc, srv, "owner")["publishThing owner:self"]; r.Verdict != conform.Pass {
		t.Fatalf("the owner cases did not run: %+v", r)
	}
	if left := api.left(); api.n == 0 || len(left) > 0 {
		t.Errorf("of %d things made, the owner cases left %v", api.n, left)
	}
}
