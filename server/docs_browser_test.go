package server_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/specguard/specguard/internal/spectest"
	"github.com/specguard/specguard/internal/testenv"
	"github.com/specguard/specguard/policy"
)

// browser starts headless Chromium for one test. Without it the test is
// skipped, except under CI=true, where that is a failure.
func browser(t *testing.T) (context.Context, *pageLog) {
	t.Helper()
	testenv.Outside(t, "Chromium")
	exec := os.Getenv("SPECGUARD_TEST_CHROMIUM")
	if exec == "" {
		exec = "/usr/bin/chromium"
	}
	if _, err := os.Stat(exec); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("Chromium is needed (%s): %v", exec, err)
		}
		t.Skipf("no Chromium at %s (install Debian's chromium, or set SPECGUARD_TEST_CHROMIUM)", exec)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(exec),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1600),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(actx)
	ctx, cancelTimeout := context.WithTimeout(ctx, 60*time.Second)
	t.Cleanup(func() { cancelTimeout(); cancelCtx(); cancelAlloc() })
	log := &pageLog{}
	if err := chromedp.Listen(ctx, func(ev any) {
		if e, ok := ev.(*network.EventRequestWillBeSent); ok {
			log.add(&log.requests, e.Request.URL)
		}
	}); err != nil {
		t.Fatal(err)
	}
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				log.add(&log.errors, m.String())
			}
		}
	}()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}
	return ctx, log
}

type pageLog struct {
	mu       sync.Mutex
	requests []string
	errors   []string
}

func (l *pageLog) add(list *[]string, s string) {
	l.mu.Lock()
	*list = append(*list, s)
	l.mu.Unlock()
}

// check fails when the page fetched anything from another host, or logged
// an error (a Content-Security-Policy violation, say).
func (l *pageLog) check(t *testing.T, base string) {
	t.Helper()
	l.mu.Lock()
	defer l.mu.Unlock()
	own, _ := url.Parse(base)
	for _, r := range l.requests {
		u, err := url.Parse(r)
		if err != nil || (u.Scheme != "data" && u.Host != own.Host) {
			t.Errorf("the page fetched %s: only %s may be contacted", r, own.Host)
		}
	}
	for _, e := range l.errors {
		t.Errorf("console error: %s", e)
	}
}

// screenshot saves the page as a test artifact: in
// $SPECGUARD_TEST_ARTIFACTS when set, else in the test's temp dir.
func screenshot(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	saveArtifact(t, name, png)
}

func saveArtifact(t *testing.T, name string, png []byte) {
	t.Helper()
	dir := os.Getenv("SPECGUARD_TEST_ARTIFACTS")
	if dir == "" {
		dir = t.TempDir()
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Errorf("screenshot: %v", err)
		return
	}
	t.Logf("screenshot: %s", path)
}

// getMeOp is Swagger UI's block of the document's me operation
// (#operations-<first tag>-<operationId>).
func getMeOp(t *testing.T) string {
	t.Helper()
	op := spectest.CredentialOp(t, docTable(t), "me")
	tag := "default"
	if len(op.Spec.Tags) > 0 {
		tag = op.Spec.Tags[0]
	}
	return "#operations-" + tag + "-" + op.ID
}

// schemeOf is the name of the first scheme of type typ the me operation
// takes.
func schemeOf(t *testing.T, typ policy.SchemeType) string {
	t.Helper()
	for _, alt := range spectest.CredentialOp(t, docTable(t), "me").Security.Alternatives {
		for _, sr := range alt {
			if sr.Scheme.Type == typ {
				return sr.Scheme.Name
			}
		}
	}
	t.Fatalf("this test needs the me operation to take a %s scheme", typ)
	return ""
}

// callMe authorizes with authorize (the steps inside the Authorize dialog),
// closes the dialog, and executes GET /me from its block; it returns the
// status and the response body the page shows.
func callMe(t *testing.T, ctx context.Context, artifact string, authorize ...chromedp.Action[chromedp.Void]) (status, body string) {
	t.Helper()
	getMeOp := getMeOp(t)
	steps := []chromedp.Action[chromedp.Void]{
		chromedp.Click(chromedp.CSS(`button.btn.authorize`)),
	}
	steps = append(steps, authorize...)
	steps = append(steps,
		chromedp.Click(chromedp.CSS(`button.btn-done`)),
		chromedp.Click(chromedp.CSS(getMeOp+` .opblock-summary`)),
		chromedp.Click(chromedp.CSS(getMeOp+` button.try-out__btn`)),
		chromedp.Click(chromedp.CSS(getMeOp+` button.execute`)),
		chromedp.WaitVisible(chromedp.CSS(getMeOp+` .live-responses-table tbody .response-col_status`)),
	)
	err := chromedp.Do(ctx, steps...)
	screenshot(t, ctx, artifact)
	if err != nil {
		t.Fatalf("driving the docs page: %v", err)
	}
	status, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(getMeOp+` .live-responses-table tbody .response-col_status`)))
	if err != nil {
		t.Fatal(err)
	}
	body, err = chromedp.Run(ctx, chromedp.Text(chromedp.CSS(getMeOp+` .live-responses-table tbody .response-col_description`)))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(status), body
}

// A user opens /docs, authorizes with the oauth2 password flow against
// /auth/token as a demo user, and calls GET /me from the page.
func TestDocsInBrowserOAuth2(t *testing.T) {
	in := start(t, nil)
	ctx, log := browser(t)
	getMeOp := getMeOp(t)
	if err := chromedp.Do(ctx, chromedp.Navigate(in.base+"/docs/"), chromedp.WaitVisible(chromedp.CSS(getMeOp))); err != nil {
		t.Fatal(err)
	}
	status, body := callMe(t, ctx, "docs-oauth2-me.png",
		chromedp.WaitVisible(chromedp.CSS(`#oauth_username`)),
		chromedp.SendKeys(chromedp.CSS(`#oauth_username`), "user@example.com"),
		chromedp.SendKeys(chromedp.CSS(`#oauth_password`), "user-password"),
		chromedp.Click(chromedp.Search(`//div[contains(@class,"auth-container")][.//input[@id="oauth_username"]]//button[contains(@class,"authorize")]`)),
		chromedp.WaitVisible(chromedp.Search(`//div[contains(@class,"auth-container")][.//h4[contains(., "`+schemeOf(t, policy.SchemeOAuth2)+`")]]//*[contains(., "Authorized")]`)),
	)
	if status != "200" || !strings.Contains(body, "user@example.com") {
		t.Fatalf("GET /me from the page: status %q, body %q", status, body)
	}
	if png, err := chromedp.Run(ctx, chromedp.Screenshot(chromedp.CSS(getMeOp))); err == nil {
		saveArtifact(t, "docs-oauth2-me-operation.png", png)
	}
	log.check(t, in.base)
}

// The same with a bearer token obtained from POST /auth/login, pasted into
// the bearerAuth scheme; then the policy page.
func TestDocsInBrowserBearerAndPolicy(t *testing.T) {
	in := start(t, nil)
	tok := login(t, in, "admin@example.com", "admin-password")
	ctx, log := browser(t)
	bearer := `//div[contains(@class,"auth-container")][.//h4[contains(., "` + schemeOf(t, policy.SchemeBearer) + `")]]`
	if err := chromedp.Do(ctx, chromedp.Navigate(in.base+"/docs/"), chromedp.WaitVisible(chromedp.CSS(getMeOp(t)))); err != nil {
		t.Fatal(err)
	}
	status, body := callMe(t, ctx, "docs-bearer-me.png",
		chromedp.WaitVisible(chromedp.Search(bearer+`//input`)),
		chromedp.SendKeys(chromedp.Search(bearer+`//input`), tok),
		chromedp.Click(chromedp.Search(bearer+`//button[contains(@class,"authorize")]`)),
		chromedp.WaitVisible(chromedp.Search(bearer+`//*[contains(., "Authorized")]`)),
	)
	if status != "200" || !strings.Contains(body, "admin@example.com") {
		t.Fatalf("GET /me with a pasted token: status %q, body %q", status, body)
	}

	// The policy page: one row per operation, coloured by access.
	table := docTable(t)
	jwks := spectest.CredentialOp(t, table, "jwks").ID
	if err := chromedp.Do(ctx, chromedp.Navigate(in.base+"/docs/policy"), chromedp.WaitVisible(chromedp.CSS(`#op-`+jwks))); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "docs-policy.png")
	// An operation with an AND of schemes, when the document has one.
	var and *policy.Operation
	var andAlt policy.Requirement
	for _, op := range table.Operations() {
		for _, alt := range op.Security.Alternatives {
			if and == nil && len(alt) > 1 {
				and, andAlt = op, alt
			}
		}
	}
	rows := map[string]string{jwks: "public", spectest.CredentialOp(t, table, "me").ID: "protected"}
	if and != nil {
		rows[and.ID] = "protected"
	}
	for _, op := range table.Operations() {
		if op.Security.Access() == policy.AccessOptional {
			rows[op.ID] = "optional" // one that admits anonymous callers, when the document has one
			break
		}
	}
	for id, class := range rows {
		got, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS(`#op-`+id), "class"))
		if err != nil || got.Value != class {
			t.Errorf("policy row %s: class %+v (%v), want %s", id, got, err, class)
		}
	}
	loginOp := spectest.CredentialOp(t, table, "login")
	login, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#op-`+loginOp.ID)))
	if tier := spectest.TierOf(t, loginOp, policy.KeyIP, policy.WhoAnonymous).String(); err != nil || !strings.Contains(login, tier) {
		t.Errorf("policy row %s: %q %v, want it to say %q", loginOp.ID, login, err, tier)
	}
	if and != nil {
		row, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(`#op-`+and.ID)))
		if !strings.Contains(row, andAlt.String()) {
			t.Errorf("policy row %s: %q, want it to say %q", and.ID, row, andAlt.String())
		}
	}
	log.check(t, in.base)
}
