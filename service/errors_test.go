package service_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/go-chi/chi/v5"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/internal/keytest"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/service"
	"github.com/specguard/specguard/sqldb"
)

// thingsOps is an operation that writes what it is given into a table
// with constraints: a record of the app's own, as a handler writes one.
const thingsOps = `  /things:
    post:
      operationId: createThing
      security: []
      x-rate-limit: false
      x-lint-ignore: [anonymous-write]
      requestBody:
        required: true
        content:
          application/json:
            schema: {type: object, required: [id, owner], properties: {id: {type: string}, owner: {type: string}}}
      responses:
        '204': {description: Written.}
        '409': {description: Conflict., content: {application/problem+json: {schema: {type: object}}}}
        '422': {description: Unprocessable., content: {application/problem+json: {schema: {type: object}}}}
`

// A constraint the database refuses is no outage: a record that names an
// account that does not exist, or an id already taken, is a 409; a value
// a check refuses a 422; never a 503 saying a store is unavailable, on
// SQLite and on PostgreSQL.
func TestConstraintsAreConflictsNotOutages(t *testing.T) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) {
			env := map[string]string{"SPECGUARD_DATA_DIR": t.TempDir(), "SPECGUARD_ADMIN_ADDR": "off", "SPECGUARD_LOG_REQUESTS": "false"}
			if db == "postgres" {
				env["SPECGUARD_DATABASE_URL"], env["SPECGUARD_SIGNING_KEY_FILE"] = pgtest.New(t), keytest.File(t)
			}
			app := service.App{
				Name: "things", SpecSource: "things.yaml",
				Spec: []byte(strings.Replace(string(credentials.Fragment), "\npaths:\n", "\npaths:\n"+thingsOps, 1)),
				Migrations: []sqldb.Migrations{{Name: "things", Table: "things_version", FS: fstest.MapFS{"00001_things.sql": {Data: []byte(`-- +goose Up
CREATE TABLE things (
    id    TEXT PRIMARY KEY CHECK (length(id) > 1),
    owner TEXT NOT NULL REFERENCES users (id)
);
-- +goose Down
DROP TABLE things;
`)}}}},
				Routes: func(r chi.Router, d *service.Deps) error {
					r.Post("/things", func(w http.ResponseWriter, r *http.Request) {
						var in struct{ ID, Owner string }
						_ = json.NewDecoder(r.Body).Decode(&in)
						if _, err := d.DB.Exec(r.Context(), `INSERT INTO things (id, owner) VALUES (?, ?)`, in.ID, in.Owner); err != nil {
							d.Errors.Response(w, r, err)
							return
						}
						w.WriteHeader(http.StatusNoContent)
					})
					return nil
				},
			}
			srv, err := service.Build(context.Background(), app, nil, func(k string) string { return env[k] }, io.Discard, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(srv.Close)
			ts := httptest.NewServer(srv.Handler)
			t.Cleanup(ts.Close)
			reg, err := http.Post(ts.URL+"/auth/register", "application/json", strings.NewReader(`{"email":"owner@example.com","password":"correct horse battery"}`))
			if err != nil || reg.StatusCode != 201 {
				t.Fatalf("register: %v %v", reg, err)
			}
			var account struct{ ID string }
			_ = json.NewDecoder(reg.Body).Decode(&account)
			reg.Body.Close()
			for _, c := range []struct {
				name, body string
				status     int
				detail     string
			}{
				{"a record of an account", `{"id":"t1","owner":"` + account.ID + `"}`, 204, ""},
				{"an id taken", `{"id":"t1","owner":"` + account.ID + `"}`, 409, "The record exists already."},
				{"an account that does not exist", `{"id":"t2","owner":"nobody"}`, 409, "names a record that does not exist"},
				{"a value a check refuses", `{"id":"x","owner":"` + account.ID + `"}`, 422, "a value the records cannot take"},
				// PostgreSQL's text cannot hold a NUL, SQLite's can.
				{"a value the database cannot hold", `{"id":"tt\u00003","owner":"` + account.ID + `"}`, map[string]int{"sqlite": 204, "postgres": 422}[db], map[string]string{"postgres": "a value the records cannot take"}[db]},
			} {
				resp, err := http.Post(ts.URL+"/things", "application/json", strings.NewReader(c.body))
				if err != nil {
					t.Fatal(err)
				}
				var p struct{ Detail string }
				_ = json.NewDecoder(resp.Body).Decode(&p)
				resp.Body.Close()
				if resp.StatusCode != c.status || !strings.Contains(p.Detail, c.detail) {
					t.Errorf("%s: %d %q, want %d saying %q", c.name, resp.StatusCode, p.Detail, c.status, c.detail)
				}
			}
		})
	}
}
