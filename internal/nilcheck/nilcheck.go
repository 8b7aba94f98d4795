// Package nilcheck tells a missing dependency from a present one when a
// constructor receives it as an interface, so that it fails at start, with
// a message, instead of panicking on the first request.
package nilcheck

import "reflect"

// Nil reports whether v is nil or an interface holding a nil pointer, map,
// slice, channel or function (a typed nil such as (*T)(nil)).
func Nil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return rv.IsNil()
	}
	return false
}
