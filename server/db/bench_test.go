package db_test

import (
	"path/filepath"
	"testing"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/credentials/sqlstore"
	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/server/db"
	"github.com/specguard/specguard/sqldb"
)

// BenchmarkPost is the read GET /posts/{id} makes.
func BenchmarkPost(b *testing.B) {
	for _, src := range []struct {
		name string
		src  func() sqldb.Source
	}{
		{"sqlite", func() sqldb.Source { return sqldb.Source{Kind: sqldb.SQLite, DSN: filepath.Join(b.TempDir(), "b.db")} }},
		{"postgres", func() sqldb.Source { return sqldb.Source{Kind: sqldb.Postgres, DSN: pgtest.New(b)} }},
	} {
		b.Run(src.name, func(b *testing.B) {
			sd, err := sqldb.Open(ctx, src.src())
			if err != nil {
				b.Fatal(err)
			}
			defer sd.Close()
			for _, set := range []sqldb.Migrations{sqlstore.Migrations, db.Migrations} {
				if _, _, err := sd.Migrate(ctx, set, nil); err != nil {
					b.Fatal(err)
				}
			}
			u := &credentials.Account{ID: security.NewID(), Email: "b@example.com", Role: "user", PasswordHash: "x"}
			if err := sqlstore.New(sd).CreateAccount(ctx, u); err != nil {
				b.Fatal(err)
			}
			d := db.New(sd)
			p := &db.Post{ID: security.NewID(), AuthorID: u.ID, Title: "t", Body: "b", Status: "published"}
			if err := d.CreatePost(ctx, p); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := d.Post(ctx, p.ID); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}
