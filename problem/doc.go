// Package problem writes the errors specguard answers with: RFC 9457
// problem details (application/problem+json) and, for 401 and 403, the
// WWW-Authenticate challenge (RFC 6750 for bearer tokens). The guard, the
// example app and the examples all write through it, so every error has
// one shape.
//
// Start with Writer: its Prefix makes the type URI of every problem whose
// Type is a bare name ("invalid-token" becomes
// "urn:specguard:problem:invalid-token"); full URIs are kept as they are.
// Challenge formats one WWW-Authenticate challenge.
package problem
