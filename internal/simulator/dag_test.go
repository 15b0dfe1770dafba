package simulator

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// mustCompile compiles a script that must compile.
func mustCompile(t *testing.T, code, lang string) *DAGResult {
	t.Helper()
	r, err := compileDAG(DAGRequest{Code: code, Language: lang})
	if err != nil {
		t.Fatalf("%q: %v", code, err)
	}
	if r.NodeCount != len(r.DAG.Nodes) {
		t.Errorf("node_count %d != %d nodes", r.NodeCount, len(r.DAG.Nodes))
	}
	return r
}

// contractDAG is the graph of the contract's example script.
var contractDAG = DAG{
	Nodes: []DAGNode{
		{ID: "n1", Op: "Image", Args: []any{"dem_30m"}},
		{ID: "n2", Op: "aspect", Args: []any{}},
		{ID: "n3", Op: "Export", Args: []any{"out"}},
	},
	Edges: [][2]string{{"n1", "n2"}, {"n2", "n3"}},
}

// TestDAGContractExample checks the contract's example in several spellings.
func TestDAGContractExample(t *testing.T) {
	cases := []struct{ name, code, lang string }{
		{"contract", "var dem = Image('dem_30m'); var a = dem.aspect(); Export(a, 'out')", "javascript"},
		{"js lines and comments", "// load\nlet dem = Image(\"dem_30m\") // the DEM\n/* aspect\n of it */ const a = dem.aspect()\n\nExport(a, 'out');\n", "javascript"},
		{"js chain", "Export(Image('dem_30m').aspect(), 'out')", "javascript"},
		{"js ee namespace", "var dem = ee.Image('dem_30m');\nvar a = dem\n  .aspect();\nExport(a, 'out')", "javascript"},
		{"python", "import ee\n# load\ndem = ee.Image('dem_30m')\na = dem.aspect()  # aspect\nExport(a, 'out')\n", "python"},
		{"python semicolons", "dem = Image('dem_30m'); a = dem.aspect(); Export(a, 'out')", "Python"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustCompile(t, c.code, c.lang)
			if !reflect.DeepEqual(r.DAG, contractDAG) || r.NodeCount != 3 {
				t.Errorf("got %+v", r)
			}
		})
	}
	b, err := json.Marshal(mustCompile(t, cases[0].code, "javascript"))
	want := `{"dag":{"nodes":[{"id":"n1","op":"Image","args":["dem_30m"]},{"id":"n2","op":"aspect","args":[]},{"id":"n3","op":"Export","args":["out"]}],"edges":[["n1","n2"],["n2","n3"]]},"node_count":3}`
	if err != nil || string(b) != want {
		t.Errorf("json\n%s\nwant\n%s", b, want)
	}
}

// TestDAGGraphs checks node order, args and edges of various scripts.
func TestDAGGraphs(t *testing.T) {
	cases := []struct {
		name, code, lang string
		want             DAG
	}{
		{"single call has no edges", "Image('a')", "javascript", DAG{
			Nodes: []DAGNode{{ID: "n1", Op: "Image", Args: []any{"a"}}},
			Edges: [][2]string{},
		}},
		{"literal variable becomes an arg", "var s = 'dem'; var n = 30; Image(s, n, -1.5, [1, 'x', [true, null]])", "javascript", DAG{
			Nodes: []DAGNode{{ID: "n1", Op: "Image", Args: []any{"dem", 30.0, -1.5, []any{1.0, "x", []any{true, nil}}}}},
			Edges: [][2]string{},
		}},
		{"arguments before the call", "x = Image('a').add(Image('b').multiply(2))", "python", DAG{
			Nodes: []DAGNode{
				{ID: "n1", Op: "Image", Args: []any{"a"}},
				{ID: "n2", Op: "Image", Args: []any{"b"}},
				{ID: "n3", Op: "multiply", Args: []any{2.0}},
				{ID: "n4", Op: "add", Args: []any{}},
			},
			Edges: [][2]string{{"n2", "n3"}, {"n1", "n4"}, {"n3", "n4"}},
		}},
		{"list of nodes is all edges", "a = Image('a')\nb = Image('b')\nMosaic([a, b], 'm')", "python", DAG{
			Nodes: []DAGNode{
				{ID: "n1", Op: "Image", Args: []any{"a"}},
				{ID: "n2", Op: "Image", Args: []any{"b"}},
				{ID: "n3", Op: "Mosaic", Args: []any{"m"}},
			},
			Edges: [][2]string{{"n1", "n3"}, {"n2", "n3"}},
		}},
		{"repeated input is one edge", "a = Image(1); a.add(a, a)", "python", DAG{
			Nodes: []DAGNode{{ID: "n1", Op: "Image", Args: []any{1.0}}, {ID: "n2", Op: "add", Args: []any{}}},
			Edges: [][2]string{{"n1", "n2"}},
		}},
		{"object literal keeps literal values", "var a = Image('x')\n  .reduceRegion({reducer: ee.Reducer.mean(), 'scale': 30})", "javascript", DAG{
			Nodes: []DAGNode{
				{ID: "n1", Op: "Image", Args: []any{"x"}},
				{ID: "n2", Op: "Reducer.mean", Args: []any{}},
				{ID: "n3", Op: "reduceRegion", Args: []any{map[string]any{"scale": 30.0}}},
			},
			Edges: [][2]string{{"n1", "n3"}, {"n2", "n3"}},
		}},
		{"python keyword arguments", "import ee as gee\nimg = gee.Image('x')\nExport.image.toDrive(image=img, scale=30,\n    region=[1, 2])", "python", DAG{
			Nodes: []DAGNode{
				{ID: "n1", Op: "Image", Args: []any{"x"}},
				{ID: "n2", Op: "Export.image.toDrive", Args: []any{map[string]any{"scale": 30.0, "region": []any{1.0, 2.0}}}},
			},
			Edges: [][2]string{{"n1", "n2"}},
		}},
		{"reassignment", "a = Image(1)\na = a.add(2)\na.view()", "python", DAG{
			Nodes: []DAGNode{
				{ID: "n1", Op: "Image", Args: []any{1.0}},
				{ID: "n2", Op: "add", Args: []any{2.0}},
				{ID: "n3", Op: "view", Args: []any{}},
			},
			Edges: [][2]string{{"n1", "n2"}, {"n2", "n3"}},
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := mustCompile(t, c.code, c.lang)
			if !reflect.DeepEqual(r.DAG, c.want) {
				t.Errorf("got  %+v\nwant %+v", r.DAG, c.want)
			}
		})
	}
}

// TestDAGDeterministic checks that a script compiles the same every time.
func TestDAGDeterministic(t *testing.T) {
	code := "var a = ee.Image('x').select(['b1']);\nvar b = a.reduceRegion({r: ee.Reducer.mean(), s: 30, g: [1, 2]});\nExport.table(b, 'out')"
	first, _ := json.Marshal(mustCompile(t, code, "javascript"))
	for range 5 {
		again, _ := json.Marshal(mustCompile(t, code, "javascript"))
		if string(again) != string(first) {
			t.Fatalf("answers differ:\n%s\n%s", first, again)
		}
	}
}

// TestDAGNodeLimit checks the 10,000-node cap.
func TestDAGNodeLimit(t *testing.T) {
	r := mustCompile(t, strings.Repeat("Image(1)\n", dagMaxNodes), "python")
	if r.NodeCount != dagMaxNodes || r.DAG.Nodes[dagMaxNodes-1].ID != "n10000" {
		t.Errorf("node_count %d", r.NodeCount)
	}
	_, err := compileDAG(DAGRequest{Code: strings.Repeat("Image(1);", dagMaxNodes+1), Language: "javascript"})
	if err == nil || err.Code != CodeInvalidParams || !strings.Contains(err.Message, "more than 10000 nodes") {
		t.Errorf("10001 nodes: %v", err)
	}
}

// TestDAGErrors checks the messages of invalid requests and scripts.
func TestDAGErrors(t *testing.T) {
	cases := []struct {
		name, code, lang, want string
	}{
		{"no language", "Image(1)", "", "language"},
		{"unsupported language", "Image(1)", "lua", `unsupported language "lua" (javascript, python)`},
		{"empty code", "", "javascript", "code"},
		{"blank code", " \n\t", "python", "code"},
		{"undefined variable", "var dem = Image('x');\nvar a = dme.aspect()", "javascript", `undefined variable "dme" at line 2`},
		{"undefined argument", "Export(a, 'out')", "python", `undefined variable "a" at line 1`},
		{"undefined capitalised value", "x = Foo", "python", `undefined variable "Foo" at line 1`},
		{"no call", "var a = 'x'; var b = [1, 2]", "javascript", "no operations found"},
		{"only comments", "# nothing\n", "python", "no operations found"},
		{"unclosed call", "var a = Image('x'", "javascript", `parse error at line 1, column 18: expected ")", found end of input`},
		{"trailing token", "a = Image('x') b", "python", `parse error at line 1, column 16: unexpected "b"`},
		{"unterminated string", "a = 1\nb = Image('x)", "python", "parse error at line 2, column 11: unterminated string"},
		{"string across lines", "Image('a\nb')", "javascript", "parse error at line 1, column 7: unterminated string"},
		{"unterminated comment", "Image(1) /* x", "javascript", "parse error at line 1, column 10: unterminated comment"},
		{"missing expression", "x = \ny = Image(1)", "python", "parse error at line 1, column 5: expected an expression, found end of line"},
		{"dangling dot", "Image(1).", "python", "parse error at line 1, column 10: expected a method name, found end of input"},
		{"property access", "Image(1).bands", "javascript", `parse error at line 1, column 15: expected "(" after .bands`},
		{"namespace without call", "x = ee.Image", "python", `expected "(" after Image`},
		{"hash in javascript", "Image(1) # x", "javascript", "parse error at line 1, column 10: unexpected character '#'"},
		{"slashes in python", "Image(1) // x", "python", "parse error at line 1, column 10: unexpected character '/'"},
		{"var in python", "var a = Image(1)", "python", `undefined variable "var" at line 1`},
		{"True in javascript", "Image(True)", "javascript", `undefined variable "True" at line 1`},
		{"comparison", "a = Image(1) == 2", "python", "comparisons are not supported"},
		{"function", "function f() { return Image(1) }", "javascript", `"function" is not supported`},
		{"def", "def f():\n  return 1", "python", `"def" is not supported`},
		{"reserved name", "var null = Image(1)", "javascript", "expected a variable name"},
		{"bad object key", "Image({1: 2})", "javascript", "expected a key"},
		{"minus without number", "Image(-x)", "javascript", `expected a number after "-"`},
		{"huge number", "Image(1e999)", "javascript", "invalid number"},
		{"bad import", "import 5", "python", "expected a module name"},
		{"unicode column", "a = Image('é'); b = ü", "python", "parse error at line 1, column 21: unexpected character 'ü'"},
		{"deep nesting", strings.Repeat("[", 300) + strings.Repeat("]", 300), "python", "nested too deeply"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := compileDAG(DAGRequest{Code: c.code, Language: c.lang})
			if err == nil {
				t.Fatalf("got %+v, want an error", r)
			}
			if err.Code != CodeInvalidParams || !strings.Contains(err.Message, c.want) {
				t.Errorf("got %d %q, want 40001 containing %q", err.Code, err.Message, c.want)
			}
		})
	}
}

// FuzzCompileDAG checks that no script panics, every error is 40001 and every graph is well formed.
func FuzzCompileDAG(f *testing.F) {
	seeds := []struct {
		code   string
		python bool
	}{
		{"var dem = Image('dem_30m'); var a = dem.aspect(); Export(a, 'out')", false},
		{"import ee\ndem = ee.Image(\"x\")  # c\nExport.image.toDrive(image=dem, scale=30, region=[1, 2])", true},
		{"var a = ee.Image('x')\n  .reduceRegion({reducer: ee.Reducer.mean(), 'scale': 30, g: null}); // c\n/* b */", false},
		{"from a.b import c as d, e\nd.f(e.g([1, -2.5e3, True, None]))", true},
		{"Image('a\\'b\\n')", false},
		{"((((", true},
		{"x = ", true},
	}
	for _, s := range seeds {
		f.Add(s.code, s.python)
	}
	f.Fuzz(func(t *testing.T, code string, python bool) {
		lang := "javascript"
		if python {
			lang = "python"
		}
		r, err := compileDAG(DAGRequest{Code: code, Language: lang})
		if err != nil {
			if err.Code != CodeInvalidParams || err.Message == "" {
				t.Fatalf("error %d %q, want 40001 with a message", err.Code, err.Message)
			}
			return
		}
		if r.NodeCount == 0 || r.NodeCount != len(r.DAG.Nodes) || r.NodeCount > dagMaxNodes || r.DAG.Edges == nil {
			t.Fatalf("inconsistent answer %+v", r)
		}
		ids := map[string]int{}
		for i, n := range r.DAG.Nodes {
			ids[n.ID] = i
			if n.Args == nil || n.Op == "" {
				t.Fatalf("node %+v", n)
			}
		}
		for _, e := range r.DAG.Edges {
			from, ok1 := ids[e[0]]
			to, ok2 := ids[e[1]]
			if !ok1 || !ok2 || from >= to {
				t.Fatalf("edge %v does not go forward between known nodes", e)
			}
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	})
}
