package main

// Where the harness reads the document: what it needs of it, and the copy
// it loads with limits high enough never to refuse.

import (
	"errors"
	"fmt"
	"os"

	"gopkg.in/yaml.v3"
)

// needsTheBlog says what the harness needs: it compares stacks serving the
// same blog, the example's, the peers included (e2e/bench/peers).
const needsTheBlog = "make bench loads the example blog's posts (GET /posts/{id}, GET /posts, POST /posts) on specguard and on peer stacks that serve the same blog (e2e/bench/peers); after the example's domain is replaced there is nothing to compare: BenchmarkGuard (go test -run XXX -bench BenchmarkGuard ./guard/) and make bench-github still measure the guard"

// writeBenchSpec copies the example spec with the document's default tiers
// and POST /posts's set to limit per window with burst (0: the limit),
// high enough that the load is never refused (a request is charged one
// tier, by principal or by IP), and GET /posts/{id} requiring oauth2 or an
// API key with [posts:read].
func writeBenchSpec(src, dst string, limit int, window string, burst int) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return err
	}
	var tiers yaml.Node
	if burst == 0 {
		burst = limit
	}
	if err := yaml.Unmarshal(fmt.Appendf(nil, `[{name: anon, limit: %[1]d, window: %[2]s, burst: %[3]d, key: ip, who: anonymous},
{name: user, limit: %[1]d, window: %[2]s, burst: %[3]d, key: principal, who: authenticated}]`, limit, window, burst), &tiers); err != nil {
		return err
	}
	var required yaml.Node
	if err := yaml.Unmarshal([]byte(`[{oauth2: [posts:read]}, {apiKeyAuth: [posts:read]}]`), &required); err != nil {
		return err
	}
	root := doc.Content[0]
	limits := lookup(root, "x-rate-limit")
	getPost := lookup(lookup(lookup(root, "paths"), "/posts/{id}"), "get")
	if limits == nil || getPost == nil || lookup(getPost, "security") == nil {
		return errors.New(needsTheBlog + ": api/openapi.yaml has no document x-rate-limit, or no GET /posts/{id} with security")
	}
	*limits = *tiers.Content[0]
	// POST /posts (and the operations sharing its tiers through the YAML
	// anchor) takes a write load: never refused either.
	createPost := lookup(lookup(lookup(root, "paths"), "/posts"), "post")
	writes := lookup(createPost, "x-rate-limit")
	if writes == nil {
		return errors.New(needsTheBlog + ": api/openapi.yaml has no POST /posts with its own x-rate-limit")
	}
	anchor := writes.Anchor
	*writes = *tiers.Content[0]
	writes.Anchor = anchor
	// The example admits anonymous readers ({} first); the benchmark
	// operation requires the token or the key, so every stack must verify
	// it.
	*lookup(getPost, "security") = *required.Content[0]
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, out, 0o644)
}

// lookup returns the value of key in a YAML mapping node, or nil.
func lookup(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}
