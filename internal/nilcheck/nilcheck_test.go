package nilcheck

import "testing"

type store interface{ Check() error }

type mem struct{}

func (*mem) Check() error { return nil }

type val struct{}

func (val) Check() error { return nil }

func TestNil(t *testing.T) {
	var none store
	var typed store = (*mem)(nil)
	for _, c := range []struct {
		name string
		v    any
		want bool
	}{
		{"nil", nil, true},
		{"nil interface", none, true},
		{"typed nil pointer", typed, true},
		{"nil map", map[string]int(nil), true},
		{"nil func", (func())(nil), true},
		{"pointer", &mem{}, false},
		{"value", val{}, false},
		{"zero int", 0, false},
	} {
		if got := Nil(c.v); got != c.want {
			t.Errorf("%s: Nil = %v, want %v", c.name, got, c.want)
		}
	}
}
