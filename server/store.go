package server

import (
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/specguard/specguard/security"
)

// Errors of the app repositories.
var (
	ErrNotFound = errors.New("not found")
	ErrExists   = errors.New("already exists")
)

// User is an account of the example app.
type User struct {
	ID           string
	Email        string
	Role         string
	PasswordHash []byte
	Disabled     bool
	Created      time.Time
}

// Post is a blog post.
type Post struct {
	ID, AuthorID, Title, Body, Status string
	Created, Updated                  time.Time
}

// Repository holds the app's own data (not security state, which lives in
// a security.Store).
type Repository interface {
	CreateUser(ctx context.Context, u *User) error
	UserByEmail(ctx context.Context, email string) (*User, error)
	User(ctx context.Context, id string) (*User, error)
	Users(ctx context.Context) ([]User, error)
	DisableUser(ctx context.Context, id string) error

	CreatePost(ctx context.Context, p *Post) error
	Post(ctx context.Context, id string) (*Post, error)
	// Posts lists published posts and, when viewer is not empty, the
	// viewer's drafts, newest first.
	Posts(ctx context.Context, viewer string, limit, offset int) ([]Post, error)
	UpdatePost(ctx context.Context, p *Post) error
	DeletePost(ctx context.Context, id string) error
}

// memRepo is the in-memory Repository.
type memRepo struct {
	mu      sync.RWMutex
	users   map[string]*User
	byEmail map[string]string
	posts   map[string]*Post
}

var _ Repository = (*memRepo)(nil)

func newMemRepo() *memRepo {
	return &memRepo{users: map[string]*User{}, byEmail: map[string]string{}, posts: map[string]*Post{}}
}

func normEmail(e string) string { return strings.ToLower(strings.TrimSpace(e)) }

func (m *memRepo) CreateUser(_ context.Context, u *User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	key := normEmail(u.Email)
	if _, dup := m.byEmail[key]; dup {
		return ErrExists
	}
	if u.ID == "" {
		u.ID = security.NewID()
	}
	if u.Created.IsZero() {
		u.Created = time.Now().UTC()
	}
	c := *u
	m.users[u.ID] = &c
	m.byEmail[key] = u.ID
	return nil
}

func (m *memRepo) UserByEmail(_ context.Context, email string) (*User, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	u := m.users[m.byEmail[normEmail(email)]]
	if u == nil {
		return nil, ErrNotFound
	}
	c := *u
	return &c, nil
}

func (m *memRepo) User(_ context.Context, id string) (*User, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	u := m.users[id]
	if u == nil {
		return nil, ErrNotFound
	}
	c := *u
	return &c, nil
}

func (m *memRepo) Users(context.Context) ([]User, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]User, 0, len(m.users))
	for _, u := range m.users {
		out = append(out, *u)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Email < out[j].Email })
	return out, nil
}

func (m *memRepo) DisableUser(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	u := m.users[id]
	if u == nil {
		return ErrNotFound
	}
	u.Disabled = true
	return nil
}

func (m *memRepo) CreatePost(_ context.Context, p *Post) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p.ID = security.NewID()
	p.Created = time.Now().UTC()
	p.Updated = p.Created
	c := *p
	m.posts[p.ID] = &c
	return nil
}

func (m *memRepo) Post(_ context.Context, id string) (*Post, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	p := m.posts[id]
	if p == nil {
		return nil, ErrNotFound
	}
	c := *p
	return &c, nil
}

func (m *memRepo) Posts(_ context.Context, viewer string, limit, offset int) ([]Post, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	var out []Post
	for _, p := range m.posts {
		if p.Status == "published" || (viewer != "" && p.AuthorID == viewer) {
			out = append(out, *p)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.After(out[j].Created)
		}
		return out[i].ID < out[j].ID
	})
	if offset >= len(out) {
		return []Post{}, nil
	}
	out = out[offset:]
	return slices.Clip(out[:min(limit, len(out))]), nil
}

func (m *memRepo) UpdatePost(_ context.Context, p *Post) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.posts[p.ID] == nil {
		return ErrNotFound
	}
	p.Updated = time.Now().UTC()
	c := *p
	m.posts[p.ID] = &c
	return nil
}

func (m *memRepo) DeletePost(_ context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.posts[id] == nil {
		return ErrNotFound
	}
	delete(m.posts, id)
	return nil
}
