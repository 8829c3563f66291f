package agent

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The API tables, the dispatch switches and the handler files cannot drift apart: every API that apis
// (or txnAPIs, served with Config.Transactions) lists has a case in a dispatch switch, and a handler file named by its key (NN_name.go, the index a reader navigates by) whose
// opening says the same version range; nothing is dispatched that the tables do not list.
func TestAPITableMatchesDispatchAndHandlers(t *testing.T) {
	t.Parallel()
	cases := dispatchedRequests(t)
	tables := maps.Clone(apis)
	maps.Copy(tables, txnAPIs)
	for key, r := range tables {
		name := kmsg.NameForKey(key)
		typ := reflect.TypeOf(kmsg.RequestForKey(key)).Elem().Name()
		if !cases[typ] {
			t.Errorf("%s (key %d) is served but no switch dispatches %s", name, key, typ)
		}
		delete(cases, typ)
		if got, ok := handlerVersions(t, key, name); ok && got != r {
			t.Errorf("%s: its handler file says v%d-%d, apis serves v%d-%d", name, got.min, got.max, r.min, r.max)
		}
	}
	for typ := range cases {
		t.Errorf("a switch dispatches %s, which no API table lists", typ)
	}
}

// dispatchedRequests lists the kmsg request types of the type switches of the package (server.go's
// dispatch and handle, and the switches they hand groups of APIs to).
func dispatchedRequests(t *testing.T) map[string]bool {
	t.Helper()
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		addCases(f, out)
	}
	return out
}

// addCases adds to out the kmsg request types that case clauses of f name.
func addCases(f *ast.File, out map[string]bool) {
	ast.Inspect(f, func(n ast.Node) bool {
		cc, ok := n.(*ast.CaseClause)
		if !ok {
			return true
		}
		for _, e := range cc.List {
			if star, ok := e.(*ast.StarExpr); ok {
				if sel, ok := star.X.(*ast.SelectorExpr); ok && strings.HasSuffix(sel.Sel.Name, "Request") {
					if pkg, ok := sel.X.(*ast.Ident); ok && pkg.Name == "kmsg" {
						out[sel.Sel.Name] = true
					}
				}
			}
		}
		return true
	})
}

// handlerHeader is the opening line of a handler file: "// Name: v0-N" (or "v0"), the name as Kafka
// spells it, perhaps with a note in parentheses, perhaps with a condition after a comma.
var handlerHeader = regexp.MustCompile(`(?m)^// (\w+)(?: \([^)]*\))?: v(\d+)(?:-(\d+))?(?:,.*)?$`)

// handlerVersions reads the version range the handler file of key declares; false if it has none.
func handlerVersions(t *testing.T, key int16, name string) (apiRange, bool) {
	t.Helper()
	files, err := filepath.Glob(fmt.Sprintf("%02d_*.go", key))
	if err != nil {
		t.Fatal(err)
	}
	var src []byte
	for _, f := range files {
		if !strings.HasSuffix(f, "_test.go") {
			if src, err = os.ReadFile(f); err != nil {
				t.Fatal(err)
			}
		}
	}
	m := handlerHeader.FindSubmatch(src)
	if m == nil || !strings.EqualFold(string(m[1]), name) {
		t.Errorf("%s (key %d): no handler file %02d_*.go opening with \"// %s: v0-N\"", name, key, key, name)
		return apiRange{}, false
	}
	lo, _ := strconv.Atoi(string(m[2]))
	hi := lo
	if len(m[3]) > 0 {
		hi, _ = strconv.Atoi(string(m[3]))
	}
	return apiRange{int16(lo), int16(hi)}, true
}
