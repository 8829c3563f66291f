package agent

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twmb/franz-go/pkg/kmsg"
)

// The apis table, the dispatch switches and the handler files cannot drift apart: every API the table
// serves has a case in server.go's dispatch or handle, and a handler file named by its key (NN_name.go,
// the index a reader navigates by) whose opening says the same version range; nothing is dispatched
// that the table does not serve.
func TestAPITableMatchesDispatchAndHandlers(t *testing.T) {
	t.Parallel()
	cases := dispatchedRequests(t)
	for key, r := range apis {
		name := kmsg.NameForKey(key)
		typ := reflect.TypeOf(kmsg.RequestForKey(key)).Elem().Name()
		if !cases[typ] {
			t.Errorf("%s (key %d) is in apis but server.go dispatches no %s", name, key, typ)
		}
		delete(cases, typ)
		if got, ok := handlerVersions(t, key, name); ok && got != r {
			t.Errorf("%s: its handler file says v%d-%d, apis serves v%d-%d", name, got.min, got.max, r.min, r.max)
		}
	}
	for typ := range cases {
		t.Errorf("server.go dispatches %s, which apis does not serve", typ)
	}
}

// dispatchedRequests lists the kmsg request types of the type switches in server.go.
func dispatchedRequests(t *testing.T) map[string]bool {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "server.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
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
	return out
}

// handlerHeader is the opening line of a handler file: "// Name: v0-N" (or "v0"), the name as Kafka
// spells it, perhaps with a note in parentheses.
var handlerHeader = regexp.MustCompile(`(?m)^// (\w+)(?: \([^)]*\))?: v(\d+)(?:-(\d+))?$`)

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
