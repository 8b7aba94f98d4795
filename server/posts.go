package server

// Handlers of /posts: the records the example app keeps.

import (
	"context"
	"errors"
	"net/http"
	"slices"
	"strings"

	"github.com/specguard/specguard/api/gen"
	"github.com/specguard/specguard/policy"
	"github.com/specguard/specguard/security"
	"github.com/specguard/specguard/server/db"
)

// visible reports whether viewer (nil when anonymous) may see p.
func visible(p *Post, viewer *security.Principal) bool {
	return p.Status == string(gen.Published) || (viewer != nil && viewer.Subject == p.AuthorID)
}

// overrides reports whether who may act on anyone's post in the operation
// being served: it holds a scope the document's x-owner names as an
// override (policy.FromContext), so that an edit of the document reaches
// the handler too.
func overrides(ctx context.Context, who *security.Principal) bool {
	op := policy.FromContext(ctx)
	return who != nil && op != nil && op.Owner != nil && slices.ContainsFunc(op.Owner.Override, who.HasScope)
}

// nulIn names the first of a post's title and body (nil when not given)
// that holds U+0000, "" when neither does. JSON carries it, the schema
// allows it, SQLite keeps it, but PostgreSQL cannot hold it in text: the
// same request must be answered alike on both.
func nulIn(title, body *string) string {
	switch {
	case title != nil && strings.ContainsRune(*title, 0):
		return "body.title"
	case body != nil && strings.ContainsRune(*body, 0):
		return "body.body"
	}
	return ""
}

// nulProblem is the 400 of a field holding U+0000.
func nulProblem(field string) gen.BadRequestApplicationProblemPlusJSONResponse {
	p := newProblem(http.StatusBadRequest, "invalid-request", "Invalid request", field+" holds the character U+0000, which posts cannot.")
	p.Errors = &[]gen.FieldError{{Field: field, Message: "holds U+0000"}}
	return gen.BadRequestApplicationProblemPlusJSONResponse(p)
}

// ListPosts implements GET /posts.
func (a *App) ListPosts(ctx context.Context, req gen.ListPostsRequestObject) (gen.ListPostsResponseObject, error) {
	limit, offset := 20, 0
	if req.Params.Limit != nil {
		limit = *req.Params.Limit
	}
	if req.Params.Offset != nil {
		offset = *req.Params.Offset
	}
	viewer := ""
	if p := caller(ctx); p != nil {
		viewer = p.Subject
	}
	posts, err := a.repo.Posts(ctx, viewer, limit, offset)
	if err != nil {
		return nil, err
	}
	out := make(gen.ListPosts200JSONResponse, 0, len(posts))
	for i := range posts {
		out = append(out, postView(&posts[i]))
	}
	return out, nil
}

// CreatePost implements POST /posts.
func (a *App) CreatePost(ctx context.Context, req gen.CreatePostRequestObject) (gen.CreatePostResponseObject, error) {
	if field := nulIn(&req.Body.Title, &req.Body.Body); field != "" {
		return gen.CreatePost400ApplicationProblemPlusJSONResponse{BadRequestApplicationProblemPlusJSONResponse: nulProblem(field)}, nil
	}
	status := gen.Published
	if req.Body.Status != nil {
		status = *req.Body.Status
	}
	p := &Post{ID: security.NewID(), AuthorID: caller(ctx).Subject, Title: req.Body.Title, Body: req.Body.Body, Status: string(status)}
	if err := a.repo.CreatePost(ctx, p); err != nil {
		return nil, err
	}
	return gen.CreatePost201JSONResponse(postView(p)), nil
}

// GetPost implements GET /posts/{id}; a draft is visible to its author only.
func (a *App) GetPost(ctx context.Context, req gen.GetPostRequestObject) (gen.GetPostResponseObject, error) {
	p, err := a.repo.Post(ctx, req.Id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil || !visible(p, caller(ctx)) {
		return gen.GetPost404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("post")}, nil
	}
	return gen.GetPost200JSONResponse(postView(p)), nil
}

// UpdatePost implements PATCH /posts/{id}: its author, or a holder of a scope
// its x-owner names as an override (users:admin).
func (a *App) UpdatePost(ctx context.Context, req gen.UpdatePostRequestObject) (gen.UpdatePostResponseObject, error) {
	who := caller(ctx)
	p, err := a.repo.Post(ctx, req.Id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil || !(visible(p, who) || overrides(ctx, who)) {
		return gen.UpdatePost404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("post")}, nil
	}
	if p.AuthorID != who.Subject && !overrides(ctx, who) {
		return gen.UpdatePost403ApplicationProblemPlusJSONResponse{ForbiddenApplicationProblemPlusJSONResponse: forbidden("only its author, or a caller holding a scope that acts on anyone's post, may edit this post")}, nil
	}
	if field := nulIn(req.Body.Title, req.Body.Body); field != "" {
		return gen.UpdatePost400ApplicationProblemPlusJSONResponse{BadRequestApplicationProblemPlusJSONResponse: nulProblem(field)}, nil
	}
	patch := db.PostPatch{Title: req.Body.Title, Body: req.Body.Body}
	if req.Body.Status != nil {
		status := string(*req.Body.Status)
		patch.Status = &status
	}
	p, err = a.repo.UpdatePost(ctx, req.Id, patch)
	if errors.Is(err, ErrNotFound) {
		return gen.UpdatePost404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("post")}, nil
	} else if err != nil {
		return nil, err
	}
	return gen.UpdatePost200JSONResponse(postView(p)), nil
}

// DeletePost implements DELETE /posts/{id}: its author, or a holder of a scope
// its x-owner names as an override (posts:delete).
func (a *App) DeletePost(ctx context.Context, req gen.DeletePostRequestObject) (gen.DeletePostResponseObject, error) {
	who := caller(ctx)
	p, err := a.repo.Post(ctx, req.Id)
	if err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	if err != nil || !(visible(p, who) || overrides(ctx, who)) {
		return gen.DeletePost404ApplicationProblemPlusJSONResponse{NotFoundApplicationProblemPlusJSONResponse: notFound("post")}, nil
	}
	if p.AuthorID != who.Subject && !overrides(ctx, who) {
		return gen.DeletePost403ApplicationProblemPlusJSONResponse{ForbiddenApplicationProblemPlusJSONResponse: forbidden("only its author, or a caller holding a scope that acts on anyone's post, may delete this post")}, nil
	}
	if err := a.repo.DeletePost(ctx, p.ID); err != nil && !errors.Is(err, ErrNotFound) {
		return nil, err
	}
	return gen.DeletePost204Response{}, nil
}

func postView(p *Post) gen.Post {
	return gen.Post{Id: p.ID, AuthorId: p.AuthorID, Title: p.Title, Body: p.Body, Status: gen.PostStatus(p.Status), CreatedAt: p.Created, UpdatedAt: p.Updated}
}

func forbidden(detail string) gen.ForbiddenApplicationProblemPlusJSONResponse {
	return gen.ForbiddenApplicationProblemPlusJSONResponse{Body: newProblem(http.StatusForbidden, "forbidden", "Forbidden", detail)}
}
