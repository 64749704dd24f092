package state

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestStatePurity keeps the machine deterministic: its code may not import
// what reads a clock, locks, logs, draws random numbers or touches files,
// nor use channels, goroutines or select. A replay and a raft follower must
// compute the same state from the same commands.
func TestStatePurity(t *testing.T) {
	allowed := map[string]bool{
		"encoding/binary": true, "errors": true, "fmt": true, "slices": true,
		"strings": true, "hash/crc32": true, "math/bits": true,
	}
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		name := e.Name()
		if !strings.HasSuffix(name, ".go") || strings.HasSuffix(name, "_test.go") {
			continue
		}
		n++
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if !allowed[p] {
				t.Errorf("%s imports %q: the state machine must not depend on clocks, locks, I/O, randomness or logging", fset.Position(imp.Pos()), p)
			}
		}
		ast.Inspect(f, func(node ast.Node) bool {
			switch node.(type) {
			case *ast.ChanType, *ast.GoStmt, *ast.SelectStmt, *ast.SendStmt:
				t.Errorf("%s: channels and goroutines have no place in the state machine", fset.Position(node.Pos()))
			}
			return true
		})
	}
	if n == 0 {
		t.Fatal("no source files found")
	}
}
