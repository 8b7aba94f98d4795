package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReplaceTheExample does what "Make it yours" in the README says, in a
// scratch copy of the project: the blog's operations, handlers, records
// and own tests go; a small resource of another domain (notes) comes with
// its operations, scopes, handlers and migration; the code is
// regenerated; and the product's tests pass on it, unchanged. What the
// swap changed is the domain alone: the document, api/conform.yaml, the
// generated code, server/ and the example's own test files (git diff
// --stat is logged). With SPECGUARD_TEST_LOOP=full (make e2e) the whole
// make test runs there.
func TestReplaceTheExample(t *testing.T) {
	if os.Getenv("SPECGUARD_TEST_LOOP") == "inner" {
		t.Skip("this is the swap's own make test")
	}
	need(t, "make", "git")
	dir := t.TempDir()
	copyProject(t, dir)
	run := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "SPECGUARD_TEST_LOOP=inner", "GOFLAGS=-mod=mod", "GIT_AUTHOR_NAME=e2e", "GIT_AUTHOR_EMAIL=e2e@example.com",
			"GIT_COMMITTER_NAME=e2e", "GIT_COMMITTER_EMAIL=e2e@example.com")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	run("git", "init", "-q")
	run("git", "add", "-A")
	run("git", "commit", "-qm", "the blog")

	// The document, edited as a person would: the posts' operations, tag,
	// scopes and schemas go; the notes' come.
	specPath := filepath.Join(dir, "api", "openapi.yaml")
	data, err := os.ReadFile(specPath)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(data), "\n")
	var doc []string
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		switch {
		case strings.HasPrefix(l, "  /posts"), strings.HasPrefix(l, "    ") && strings.Contains(strings.SplitN(l, ":", 2)[0], "Post") && !strings.HasPrefix(l, "     "):
			// A path of the posts, or a schema of theirs: up to the next
			// entry at its indentation.
			indent := len(l) - len(strings.TrimLeft(l, " "))
			for i+1 < len(lines) {
				next := lines[i+1]
				n := len(next) - len(strings.TrimLeft(next, " "))
				if strings.TrimSpace(next) != "" && n <= indent {
					break
				}
				i++
			}
		case l == "  - name: posts\n":
			doc = append(doc, "  - name: notes\n")
		case strings.HasPrefix(strings.TrimSpace(l), "posts:"):
			// a scope of the posts: the notes' take its place once
			if !strings.Contains(strings.Join(doc, ""), "notes:read:") {
				doc = append(doc, "            notes:read: Read notes.\n", "            notes:write: Write and delete one's own notes.\n")
			}
		case l == "components:\n":
			doc = append(doc, notesPaths, "\n", l)
		case l == "  schemas:\n":
			doc = append(doc, l, notesSchemas)
		default:
			doc = append(doc, strings.NewReplacer("posts:read, posts:write, posts:delete, ", "notes:read, notes:write, ", "posts:read, posts:write, ", "notes:read, notes:write, ").Replace(l))
		}
	}
	edited := strings.Join(doc, "")
	if strings.Contains(edited, "\n  /posts") || strings.Contains(edited, "\n            posts:") || !strings.Contains(edited, "notes:read, notes:write") {
		t.Fatalf("the posts are not all gone from the document, or the roles did not take the notes' scopes:\n%s", edited)
	}
	write(t, specPath, edited)
	conform, err := os.ReadFile(filepath.Join(dir, "api", "conform.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	write(t, filepath.Join(dir, "api", "conform.yaml"), strings.ReplaceAll(string(conform), "posts", "notes"))

	// The app: the blog's handlers, records and own tests go; the notes'
	// handlers and migration come, and the wiring names them.
	for _, gone := range []string{"server/posts.go", "server/store.go", "server/app.go", "server/db", "server/posts_test.go", "e2e/posts_test.go"} {
		if err := os.RemoveAll(filepath.Join(dir, gone)); err != nil {
			t.Fatal(err)
		}
	}
	write(t, filepath.Join(dir, "server", "notes.go"), notesGo)
	write(t, filepath.Join(dir, "server", "migrations", "00001_notes.sql"), notesSQL)
	service, err := os.ReadFile(filepath.Join(dir, "server", "service.go"))
	if err != nil {
		t.Fatal(err)
	}
	wiring := strings.NewReplacer(
		"\t\"github.com/specguard/specguard/server/db\"\n", "",
		"[]sqldb.Migrations{db.Migrations}", "[]sqldb.Migrations{Migrations}",
		"NewApp(db.New(d.DB), ", "NewApp(d.DB, ",
	).Replace(string(service))
	if wiring == string(service) {
		t.Fatal("server/service.go no longer wires the posts as this test expects: update the test with it")
	}
	write(t, filepath.Join(dir, "server", "service.go"), wiring)

	run("make", "--no-print-directory", "generate")
	run("go", "build", "./...")
	run("git", "add", "-A")
	stat := run("git", "diff", "--cached", "--stat")
	t.Logf("the swap, as git sees it:\n%s", stat)
	for _, f := range strings.Split(strings.TrimSpace(run("git", "diff", "--cached", "--name-only")), "\n") {
		domain := strings.HasPrefix(f, "server/") || strings.HasPrefix(f, "api/gen/") || strings.HasPrefix(f, "e2e/client/") ||
			f == "api/openapi.yaml" || f == "api/conform.yaml" || f == "e2e/posts_test.go"
		if !domain {
			t.Errorf("the swap changed %s, outside the domain", f)
		}
	}

	if os.Getenv("SPECGUARD_TEST_LOOP") == "full" {
		run("make", "--no-print-directory", "test")
		return
	}
	run("make", "--no-print-directory", "check-generated", "vet")
	// The product's tests that find what they need by kind in the
	// document, on the new domain: they pass without a change.
	run("go", "test", "-count=1", "-run", "TestConformCatchesBrokenServers|TestClaimTierSkipped|TestRefreshWidensGrant|TestDataSurvivesRestart", "./server/")
	run("go", "test", "-count=1", "-run", "TestAPIKeyJourney|TestOptionalAuthRefusesBadCredentials|TestReadmeCurlWalkthrough", "./e2e/")
}

func write(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// The notes: a user's own, readable by anyone who has the id.
const notesPaths = `  /notes:
    get:
      operationId: listNotes
      tags: [notes]
      summary: The caller's notes.
      security:
        - oauth2: [notes:read]
        - apiKeyAuth: [notes:read]
        - cookieAuth: []
      responses:
        '200':
          description: The caller's notes.
          content:
            application/json:
              schema: {type: array, items: {$ref: '#/components/schemas/Note'}}
        '400': {$ref: '#/components/responses/BadRequest'}
        '401': {$ref: '#/components/responses/Unauthorized'}
        '403': {$ref: '#/components/responses/Forbidden'}
        '429': {$ref: '#/components/responses/TooManyRequests'}
        '503': {$ref: '#/components/responses/ServiceUnavailable'}
    post:
      operationId: createNote
      tags: [notes]
      summary: Write a note.
      security:
        - oauth2: [notes:write]
        - apiKeyAuth: [notes:write]
        - cookieAuth: []
      x-rate-limit:
        - {name: anon, limit: 30, window: 1m, burst: 10, key: ip, who: anonymous}
        - {name: writes, limit: 30, window: 1m, burst: 10, key: principal, who: authenticated}
      requestBody:
        required: true
        content:
          application/json:
            schema: {$ref: '#/components/schemas/NewNote'}
      responses:
        '201':
          description: The note.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Note'}
        '400': {$ref: '#/components/responses/BadRequest'}
        '401': {$ref: '#/components/responses/Unauthorized'}
        '403': {$ref: '#/components/responses/Forbidden'}
        '429': {$ref: '#/components/responses/TooManyRequests'}
        '503': {$ref: '#/components/responses/ServiceUnavailable'}
  /notes/{id}:
    parameters:
      - $ref: '#/components/parameters/ID'
    get:
      operationId: getNote
      tags: [notes]
      summary: A note, for anyone who has its id.
      security:
        - {}
        - oauth2: [notes:read]
        - apiKeyAuth: [notes:read]
        - cookieAuth: []
      responses:
        '200':
          description: The note.
          content:
            application/json:
              schema: {$ref: '#/components/schemas/Note'}
        '400': {$ref: '#/components/responses/BadRequest'}
        '401': {$ref: '#/components/responses/Unauthorized'}
        '403': {$ref: '#/components/responses/Forbidden'}
        '404': {$ref: '#/components/responses/NotFound'}
        '429': {$ref: '#/components/responses/TooManyRequests'}
        '503': {$ref: '#/components/responses/ServiceUnavailable'}
    delete:
      operationId: deleteNote
      tags: [notes]
      summary: Delete one's own note.
      x-owner: true
      security:
        - oauth2: [notes:write]
        - apiKeyAuth: [notes:write]
        - cookieAuth: []
      x-rate-limit:
        - {name: anon, limit: 30, window: 1m, burst: 10, key: ip, who: anonymous}
        - {name: writes, limit: 30, window: 1m, burst: 10, key: principal, who: authenticated}
      responses:
        '204': {description: The note is gone.}
        '400': {$ref: '#/components/responses/BadRequest'}
        '401': {$ref: '#/components/responses/Unauthorized'}
        '403': {$ref: '#/components/responses/Forbidden'}
        '404': {$ref: '#/components/responses/NotFound'}
        '429': {$ref: '#/components/responses/TooManyRequests'}
        '503': {$ref: '#/components/responses/ServiceUnavailable'}
`

const notesSchemas = `    Note:
      type: object
      required: [id, owner_id, text]
      properties:
        id: {type: string}
        owner_id: {type: string}
        text: {type: string}
    NewNote:
      type: object
      additionalProperties: false
      required: [text]
      properties:
        text: {type: string, minLength: 1, maxLength: 2000}
`

const notesSQL = `-- +goose Up
CREATE TABLE notes (
    id       TEXT PRIMARY KEY,
    owner_id TEXT NOT NULL REFERENCES users (id),
    text     TEXT NOT NULL
);
CREATE INDEX notes_by_owner ON notes (owner_id);

-- +goose Down
DROP TABLE notes;
`

const notesGo = `package server

// The notes: the example's domain now.

import (
	"context"
	"embed"
	"errors"
	"log/slog"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/sqldb"
)

//go:embed migrations/*.sql
var migrations embed.FS

// Migrations are the notes' schema.
var Migrations = sqldb.Migrations{Name: "notes", FS: migrations, Dir: "migrations", Table: "notes_version"}

// App implements the generated strict server interface.
type App struct {
	db    *sqldb.DB
	ready func(ctx context.Context) map[string]error
	log   *slog.Logger
}

var _ gen.StrictServerInterface = (*App)(nil)

// NewApp returns the app on db.
func NewApp(db *sqldb.DB, ready func(ctx context.Context) map[string]error, log *slog.Logger) *App {
	return &App{db: db, ready: ready, log: log}
}

func scanNote(row sqldb.Scanner) (*gen.Note, error) {
	var n gen.Note
	return &n, row.Scan(&n.Id, &n.OwnerId, &n.Text)
}

// ListNotes implements GET /notes.
func (a *App) ListNotes(ctx context.Context, _ gen.ListNotesRequestObject) (gen.ListNotesResponseObject, error) {
	notes, err := sqldb.List(ctx, a.db, scanNote, "SELECT id, owner_id, text FROM notes WHERE owner_id = ? ORDER BY id", security.FromContext(ctx).Subject)
	if err != nil {
		return nil, err
	}
	out := gen.ListNotes200JSONResponse{}
	for _, n := range notes {
		out = append(out, n)
	}
	return out, nil
}

// CreateNote implements POST /notes.
func (a *App) CreateNote(ctx context.Context, req gen.CreateNoteRequestObject) (gen.CreateNoteResponseObject, error) {
	n := gen.Note{Id: security.NewID(), OwnerId: security.FromContext(ctx).Subject, Text: req.Body.Text}
	if _, err := a.db.Exec(ctx, "INSERT INTO notes (id, owner_id, text) VALUES (?, ?, ?)", n.Id, n.OwnerId, n.Text); err != nil {
		return nil, err
	}
	return gen.CreateNote201JSONResponse(n), nil
}

// GetNote implements GET /notes/{id}.
func (a *App) GetNote(ctx context.Context, req gen.GetNoteRequestObject) (gen.GetNoteResponseObject, error) {
	n, err := sqldb.Get(ctx, a.db, scanNote, "SELECT id, owner_id, text FROM notes WHERE id = ?", req.Id)
	if errors.Is(err, sqldb.ErrNotFound) {
		return gen.GetNote404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("note")}, nil
	} else if err != nil {
		return nil, err
	}
	return gen.GetNote200JSONResponse(*n), nil
}

// DeleteNote implements DELETE /notes/{id}: its owner's.
func (a *App) DeleteNote(ctx context.Context, req gen.DeleteNoteRequestObject) (gen.DeleteNoteResponseObject, error) {
	err := sqldb.Affected(a.db.Exec(ctx, "DELETE FROM notes WHERE id = ? AND owner_id = ?", req.Id, security.FromContext(ctx).Subject))
	if errors.Is(err, sqldb.ErrNotFound) {
		return gen.DeleteNote404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("note")}, nil
	} else if err != nil {
		return nil, err
	}
	return gen.DeleteNote204Response{}, nil
}
`
