// Package storetest is the suite every security.Store must pass: the
// memory and Redis stores run it, and so can a store of your own.
package storetest
