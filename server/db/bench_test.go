package db_test

import (
	"path/filepath"
	"testing"

	"github.com/specguard/specguard/internal/pgtest"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/server/db"
)

// BenchmarkPost is the read GET /posts/{id} makes.
func BenchmarkPost(b *testing.B) {
	for _, src := range []struct {
		name string
		src  func() db.Source
	}{
		{"sqlite", func() db.Source { return db.Source{Kind: db.SQLite, DSN: filepath.Join(b.TempDir(), "b.db")} }},
		{"postgres", func() db.Source { return db.Source{Kind: db.Postgres, DSN: pgtest.New(b)} }},
	} {
		b.Run(src.name, func(b *testing.B) {
			d, err := db.Open(ctx, src.src())
			if err != nil {
				b.Fatal(err)
			}
			defer d.Close()
			if _, _, err := d.Migrate(ctx, nil); err != nil {
				b.Fatal(err)
			}
			u := &db.User{ID: security.NewID(), Email: "b@example.com", Role: "user", PasswordHash: "x"}
			if err := d.CreateUser(ctx, u); err != nil {
				b.Fatal(err)
			}
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
