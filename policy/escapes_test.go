package policy_test

import (
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"

	yaml "gopkg.in/yaml.v3"

	"github.com/specguard/specguard/credentials"
	"github.com/specguard/specguard/policy"
)

// asciiJSON writes a YAML document as JSON the way Python's json.dump does
// by default: every character outside ASCII as a \u escape, those outside
// the Basic Multilingual Plane as a UTF-16 surrogate pair.
func asciiJSON(t *testing.T, doc []byte, indent bool, edit func(map[string]any)) []byte {
	t.Helper()
	var v map[string]any
	if err := yaml.Unmarshal(doc, &v); err != nil {
		t.Fatal(err)
	}
	edit(v)
	raw, err := json.Marshal(v) // compact, as GitHub's description is
	if indent {
		raw, err = json.MarshalIndent(v, "", "  ")
	}
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, r := range string(raw) {
		switch {
		case r < 0x80:
			b.WriteRune(r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, hi, lo)
		default:
			fmt.Fprintf(&b, `\u%04x`, r)
		}
	}
	return []byte(b.String())
}

// findings are what Lint says of a document, without the lines (JSON
// puts everything on other lines than the YAML it was written from), and
// what the table it compiles to enforces.
func findings(t *testing.T, source string, data []byte) []string {
	t.Helper()
	table, errs, warnings := policy.LintTable(source, data)
	var out []string
	for _, e := range errs {
		out = append(out, "error: "+e.Where+": "+e.Field+": "+e.Msg)
	}
	for _, w := range warnings {
		out = append(out, "warning: "+w.Where+": "+w.Code+": "+w.Msg)
	}
	if table != nil {
		for _, op := range table.Operations() {
			tiers := make([]string, len(op.Limits))
			for i := range op.Limits {
				tiers[i] = op.Limits[i].String()
			}
			out = append(out, fmt.Sprintf("%s %s %s: %v; %v; fresh %v", op.ID, op.Method, op.Path, op.Security.Describe(), tiers, op.RequireFresh))
		}
	}
	return out
}

// Valid JSON that escapes characters outside the BMP as surrogate pairs
// was refused ("YAML: found invalid Unicode character escape code", no
// line): it is read now, and says what the YAML it was written from says,
// for the credential operations' description and a public one.
func TestJSONWithSurrogateEscapes(t *testing.T) {
	petstore, err := os.ReadFile("../cmd/specguard/testdata/public/petstore.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for name, doc := range map[string][]byte{"credentials/openapi.yaml": credentials.Fragment, "petstore.yaml": petstore} {
		t.Run(name, func(t *testing.T) {
			want := findings(t, name, doc)
			const emoji = " 🚀 café ✓ 𝄞"
			for _, indent := range []bool{false, true} {
				data := asciiJSON(t, doc, indent, func(v map[string]any) {
					info := v["info"].(map[string]any)
					info["description"] = fmt.Sprint(info["description"]) + emoji
					info["title"] = fmt.Sprint(info["title"]) + emoji
				})
				if !strings.Contains(string(data), `\ud83d\ude80`) {
					t.Fatal("the JSON holds no surrogate pair")
				}
				got := findings(t, name, data)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("indented %v: the JSON reads otherwise than the YAML:\n got %q\nwant %q", indent, got, want)
				}
				table, _, _ := policy.LintTable(name, data)
				if table == nil {
					if name == "credentials/openapi.yaml" {
						t.Fatalf("indented %v: the credential operations' description does not compile as JSON", indent)
					}
					continue
				}
				if title := table.Doc.Info.Title; !strings.HasSuffix(title, emoji) {
					t.Errorf("indented %v: title %q, want it to end with %q", indent, title, emoji)
				}
			}
		})
	}
}

// The same escapes in a YAML document's double-quoted scalars are read as
// JSON reads them (a lone surrogate as U+FFFD); in block scalars, single
// quotes and comments they are text, and stay as they are.
func TestYAMLWithSurrogateEscapes(t *testing.T) {
	doc := `openapi: 3.0.3
info:
  title: "rocket \ud83d\ude80 lone \ud800 end"   # a comment "\ud83d\ude80"
  version: '\ud83d\ude80'
  description: |
    A block scalar keeps "\ud83d\ude80" as it is.
    key: "\ud83d\ude80"
x-rate-limit: false
paths:
  /x:
    get:
      operationId: x
      security: []
      summary: He said "\ud83d\ude80" plainly
      responses: {'200': {description: "\uD83D\uDE00"}}
`
	table, err := policy.Compile("doc.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	info := table.Doc.Info
	if want := "rocket 🚀 lone \ufffd end"; info.Title != want {
		t.Errorf("title %q, want %q", info.Title, want)
	}
	if want := `\ud83d\ude80`; info.Version != want {
		t.Errorf("single-quoted version %q, want %q", info.Version, want)
	}
	if want := "A block scalar keeps \"\\ud83d\\ude80\" as it is.\nkey: \"\\ud83d\\ude80\"\n"; info.Description != want {
		t.Errorf("block scalar %q, want %q", info.Description, want)
	}
	op := table.Operation("x").Spec
	if want := `He said "\ud83d\ude80" plainly`; op.Summary != want {
		t.Errorf("plain scalar %q, want %q", op.Summary, want)
	}
	if got := *op.Responses.Value("200").Value.Description; got != "😀" {
		t.Errorf("description %q, want 😀", got)
	}
}

// Anchors and tags before a double-quoted scalar do not hide it.
func TestSurrogateEscapesAfterAnchorsAndTags(t *testing.T) {
	doc := "openapi: 3.0.3\ninfo:\n  title: &t \"a \\ud83d\\ude80\"\n  version: !!str \"\\ud83d\\ude80\"\n  description: *t\nsecurity: []\nx-rate-limit: false\npaths: {}\n"
	table, err := policy.Compile("doc.yaml", []byte(doc))
	if err != nil {
		t.Fatal(err)
	}
	if info := table.Doc.Info; info.Title != "a 🚀" || info.Version != "🚀" || info.Description != "a 🚀" {
		t.Errorf("info %+v", info)
	}
}
