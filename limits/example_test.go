package limits_test

import (
	"fmt"
	"net/http/httptest"

	"github.com/specguard/specguard/limits"
	"github.com/specguard/specguard/policy"
)

// The limiter alone: a tier of two calls a minute per account, decided in
// the memory store. The Verdict says what to answer; nothing is written.
func ExampleLimiter_Decide() {
	table, err := policy.Compile("notes.yaml", []byte(`
openapi: 3.0.3
info: {title: notes, version: "1"}
paths:
  /notes:
    get:
      operationId: listNotes
      security: [{key: []}]
      x-rate-limit:
        - {name: per-account, limit: 2, window: 1m, key: principal, who: authenticated}
      responses: {'200': {description: ok}}
components:
  securitySchemes:
    key: {type: apiKey, in: header, name: X-Key}
`))
	if err != nil {
		panic(err)
	}
	op := table.Operation("listNotes")
	l := limits.New(limits.NewMemoryStore(nil))
	alice := limits.Caller{Authenticated: true, Subject: "alice"}
	for range 3 {
		v := l.Decide(httptest.NewRequest("GET", "/notes", nil), op, alice)
		if v.Allowed {
			fmt.Println("allowed; RateLimit:", v.Limit[0])
		} else {
			fmt.Println("refused by", v.Violated(op), "retry in", v.RetryAfter, "s")
		}
	}
	// Someone else has a budget of their own.
	v := l.Decide(httptest.NewRequest("GET", "/notes", nil), op, limits.Caller{Authenticated: true, Subject: "bob"})
	fmt.Println("bob allowed:", v.Allowed)
	// Output:
	// allowed; RateLimit: "per-account";r=1;t=30
	// allowed; RateLimit: "per-account";r=0;t=60
	// refused by [per-account] retry in 30 s
	// bob allowed: true
}
