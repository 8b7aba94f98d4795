package e2e

// The example's own tests: the blog's posts. Delete this file with the
// domain; every other test of the suite tests the product.

import (
	"testing"

	"github.com/specguard/specguard/e2e/client"
)

func TestOptionalAuth(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		_, tok := register(t, c)
		draft := client.Draft
		d, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "draft", Body: "b", Status: &draft}, Bearer(tok.AccessToken))
		want(t, "create draft", d.StatusCode(), 201, d.Body)
		p, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "public", Body: "b"}, Bearer(tok.AccessToken))
		want(t, "create post", p.StatusCode(), 201, p.Body)

		anon, _ := c.ListPostsWithResponse(ctx, nil)
		want(t, "anonymous list", anon.StatusCode(), 200, anon.Body)
		for _, post := range *anon.JSON200 {
			if post.Status == client.Draft {
				t.Fatalf("anonymous caller sees draft %s", post.Id)
			}
		}
		hidden, _ := c.GetPostWithResponse(ctx, d.JSON201.Id)
		want(t, "anonymous GET of a draft", hidden.StatusCode(), 404, hidden.Body)

		mine, _ := c.ListPostsWithResponse(ctx, nil, Bearer(tok.AccessToken))
		found := false
		for _, post := range *mine.JSON200 {
			found = found || post.Id == d.JSON201.Id
		}
		if !found {
			t.Fatal("the author does not see their draft")
		}
		bad, _ := c.ListPostsWithResponse(ctx, nil, Bearer(tok.AccessToken+"x"))
		want(t, "optional auth with an invalid token", bad.StatusCode(), 401, bad.Body)
	})
}

func TestOwnership(t *testing.T) {
	stores(t, func(t *testing.T, in *Instance) {
		c := NewClient(t, in)
		_, alice := register(t, c)
		_, bob := register(t, c)
		p, _ := c.CreatePostWithResponse(ctx, client.NewPost{Title: "alice's", Body: "b"}, Bearer(alice.AccessToken))
		want(t, "alice posts", p.StatusCode(), 201, p.Body)
		id := p.JSON201.Id
		title := "bob was here"

		edit, _ := c.UpdatePostWithResponse(ctx, id, client.PostPatch{Title: &title}, Bearer(bob.AccessToken))
		want(t, "bob edits alice's post", edit.StatusCode(), 403, edit.Body)
		del, _ := c.DeletePostWithResponse(ctx, id, Bearer(bob.AccessToken))
		want(t, "bob deletes alice's post", del.StatusCode(), 403, del.Body)

		admin := login(t, NewClient(t, in), "admin@example.com", "admin-password")
		title = "edited by an admin"
		aedit, _ := c.UpdatePostWithResponse(ctx, id, client.PostPatch{Title: &title}, Bearer(admin.AccessToken))
		want(t, "admin edits", aedit.StatusCode(), 200, aedit.Body)

		mod := login(t, NewClient(t, in), "moderator@example.com", "moderator-password")
		medit, _ := c.UpdatePostWithResponse(ctx, id, client.PostPatch{Title: &title}, Bearer(mod.AccessToken))
		want(t, "moderator edits", medit.StatusCode(), 403, medit.Body)
		mdel, _ := c.DeletePostWithResponse(ctx, id, Bearer(mod.AccessToken))
		want(t, "moderator deletes", mdel.StatusCode(), 204, mdel.Body)
	})
}

// A post made on one instance of a fleet is read on the others.
func TestPostsAreOneTruthInAFleet(t *testing.T) {
	cs := onEvery(t, fleet(t, 3, Redis(t)))
	_, tok := register(t, cs[1])
	p, _ := cs[1].CreatePostWithResponse(ctx, client.NewPost{Title: "from B", Body: "shared"}, Bearer(tok.AccessToken))
	want(t, "create post on B", p.StatusCode(), 201, p.Body)
	for _, i := range []int{0, 2} {
		r, _ := cs[i].GetPostWithResponse(ctx, p.JSON201.Id)
		want(t, "GET /posts/{id} on another instance", r.StatusCode(), 200, r.Body)
		if r.JSON200.Title != "from B" {
			t.Errorf("post on instance %d: %+v", i, r.JSON200)
		}
	}
}

// The README's walk-through of the blog's posts.
func TestReadmePostsWalkthrough(t *testing.T) {
	walkthrough(t, "readme-walkthrough-posts")
}
