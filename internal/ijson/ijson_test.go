package ijson_test

import (
	"testing"

	"github.com/specguard/specguard/internal/ijson"
)

func TestCheck(t *testing.T) {
	for _, c := range []struct {
		body string
		ok   bool
	}{
		{`{"a":1,"b":{"a":2}}`, true},
		{" [1, {\"a\":\"\u00e9\"}] \n", true},
		{`{"a":1,"a":2}`, false},
		{`{"a":1,"\u0061":2}`, false},
		{`{"b":{"a":{},"a":{}}}`, false},
		{`{"a":1} {"a":1}`, false},
		{`{"a":1}]`, false},
		{"{\"a\xff\":1}", false},
		{`{"a":"\ud800"}`, false},
		{`{"a":`, false},
	} {
		if msg := ijson.Check([]byte(c.body)); (msg == "") != c.ok {
			t.Errorf("Check(%q) = %q, want ok %v", c.body, msg, c.ok)
		}
	}
}
