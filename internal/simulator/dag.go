package simulator

import (
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"
)

// Limits of a code-to-DAG compilation.
const (
	// dagMaxNodes is the largest graph one script may compile to.
	dagMaxNodes = 10000
	// dagMaxDepth bounds the nesting of expressions.
	dagMaxDepth = 200
)

// dagTokKind is the kind of a script token.
type dagTokKind int

// The script token kinds.
const (
	dagEOF dagTokKind = iota
	dagNewline
	dagIdent
	dagString
	dagNumber
	dagPunct
)

// dagToken is one token of a script: text is the source text, except for a
// string literal, where it is the unescaped value; line and col (in
// characters) are 1-based.
type dagToken struct {
	kind      dagTokKind
	text      string
	line, col int
}

// String describes the token for an error message.
func (t dagToken) String() string {
	switch t.kind {
	case dagEOF:
		return "end of input"
	case dagNewline:
		return "end of line"
	case dagString:
		return "string " + strconv.Quote(t.text)
	}
	return strconv.Quote(t.text)
}

// is reports whether the token is the punctuation or identifier s.
func (t dagToken) is(s string) bool {
	return (t.kind == dagPunct || t.kind == dagIdent) && t.text == s
}

// dagParseErrorf builds the 40001 error of a script that does not parse.
func dagParseErrorf(line, col int, format string, args ...any) *Error {
	return invalidf("parse error at line %d, column %d: %s", line, col, fmt.Sprintf(format, args...))
}

// dagTokenize splits a script into tokens, ending with a dagEOF token.
// Newlines inside parentheses, brackets and braces are dropped, as they do
// not end a statement there.
func dagTokenize(src string, python bool) ([]dagToken, *Error) {
	var toks []dagToken
	line, col := 1, 1
	depth := 0
	i := 0
	// advance moves past n bytes that hold no newline.
	advance := func(n int) {
		col += utf8.RuneCountInString(src[i : i+n])
		i += n
	}
	for i < len(src) {
		c := src[i]
		l, cl := line, col
		switch {
		case c == '\n':
			if depth == 0 {
				toks = append(toks, dagToken{kind: dagNewline, text: "\n", line: l, col: cl})
			}
			i++
			line, col = line+1, 1
		case c == ' ' || c == '\t' || c == '\r' || c == '\f' || c == '\v':
			advance(1)
		case python && c == '#', !python && strings.HasPrefix(src[i:], "//"):
			n := strings.IndexByte(src[i:], '\n')
			if n < 0 {
				n = len(src) - i
			}
			advance(n)
		case !python && strings.HasPrefix(src[i:], "/*"):
			n := strings.Index(src[i+2:], "*/")
			if n < 0 {
				return nil, dagParseErrorf(l, cl, "unterminated comment")
			}
			for _, r := range src[i : i+2+n+2] {
				if r == '\n' {
					line, col = line+1, 1
				} else {
					col++
				}
			}
			i += 2 + n + 2
		case isSQLIdentStart(c) || c == '$':
			n := 1
			for i+n < len(src) && (isSQLIdentStart(src[i+n]) || isDigit(src[i+n]) || src[i+n] == '$') {
				n++
			}
			toks = append(toks, dagToken{kind: dagIdent, text: src[i : i+n], line: l, col: cl})
			advance(n)
		case isDigit(c) || (c == '.' && i+1 < len(src) && isDigit(src[i+1])):
			n := scanNumber(src, i) - i
			toks = append(toks, dagToken{kind: dagNumber, text: src[i : i+n], line: l, col: cl})
			advance(n)
		case c == '\'' || c == '"':
			s, n, ok := scanDAGString(src[i:])
			if !ok {
				return nil, dagParseErrorf(l, cl, "unterminated string")
			}
			toks = append(toks, dagToken{kind: dagString, text: s, line: l, col: cl})
			advance(n)
		case c == '=' && strings.HasPrefix(src[i:], "=="):
			return nil, dagParseErrorf(l, cl, "comparisons are not supported")
		case strings.IndexByte("()[]{},.=;:-", c) >= 0:
			switch c {
			case '(', '[', '{':
				depth++
			case ')', ']', '}':
				depth = max(depth-1, 0)
			}
			toks = append(toks, dagToken{kind: dagPunct, text: src[i : i+1], line: l, col: cl})
			advance(1)
		default:
			r, _ := utf8.DecodeRuneInString(src[i:])
			return nil, dagParseErrorf(l, cl, "unexpected character %q", r)
		}
	}
	toks = append(toks, dagToken{kind: dagEOF, line: line, col: col})
	return toks, nil
}

// scanDAGString reads the quoted string at the start of s, answering its
// value, its length in bytes and whether it is terminated on its line.
func scanDAGString(s string) (string, int, bool) {
	q := s[0]
	var b strings.Builder
	for i := 1; i < len(s); i++ {
		switch c := s[i]; {
		case c == q:
			return b.String(), i + 1, true
		case c == '\n':
			return "", 0, false
		case c == '\\' && i+1 < len(s):
			i++
			switch e := s[i]; e {
			case 'n':
				b.WriteByte('\n')
			case 't':
				b.WriteByte('\t')
			case 'r':
				b.WriteByte('\r')
			case '\n':
				return "", 0, false
			default:
				b.WriteByte(e)
			}
		default:
			b.WriteByte(c)
		}
	}
	return "", 0, false
}

// dagValue is the value of an expression: a node (node is its id) or a
// literal (string, float64, bool, nil, []any or map[string]any); deps are the
// nodes a list or object literal held, which became edges instead of items.
type dagValue struct {
	node string
	lit  any
	deps []string
}

// dagParser compiles the tokens of one script into a DAG while parsing it.
type dagParser struct {
	toks       []dagToken
	i          int
	python     bool
	depth      int
	vars       map[string]dagValue
	namespaces map[string]bool
	nodes      []DAGNode
	edges      [][2]string
	seen       map[[2]string]bool
}

// peek answers the current token.
func (p *dagParser) peek() dagToken { return p.toks[p.i] }

// next consumes and answers the current token.
func (p *dagParser) next() dagToken {
	t := p.toks[p.i]
	if t.kind != dagEOF {
		p.i++
	}
	return t
}

// accept consumes the current token if it is the punctuation s.
func (p *dagParser) accept(s string) bool {
	if t := p.peek(); t.kind == dagPunct && t.text == s {
		p.i++
		return true
	}
	return false
}

// expect consumes the punctuation s or fails.
func (p *dagParser) expect(s string) *Error {
	if p.accept(s) {
		return nil
	}
	return p.unexpected(fmt.Sprintf("expected %q", s))
}

// unexpected builds the error of the current token, with what was wanted.
func (p *dagParser) unexpected(want string) *Error { return p.errAt(p.peek(), want) }

// errAt builds the error of token t, with what was wanted instead.
func (p *dagParser) errAt(t dagToken, want string) *Error {
	if want == "" {
		return dagParseErrorf(t.line, t.col, "unexpected %s", t)
	}
	return dagParseErrorf(t.line, t.col, "%s, found %s", want, t)
}

// compileDAG compiles the script of POST /api/dag/compile into a dataflow graph.
func compileDAG(req DAGRequest) (*DAGResult, *Error) {
	var python bool
	switch strings.ToLower(req.Language) {
	case "":
		return nil, invalidf("language is required (javascript, python)")
	case "javascript":
	case "python":
		python = true
	default:
		return nil, invalidf("unsupported language %q (javascript, python)", req.Language)
	}
	if strings.TrimSpace(req.Code) == "" {
		return nil, invalidf("code is required")
	}
	toks, err := dagTokenize(req.Code, python)
	if err != nil {
		return nil, err
	}
	p := &dagParser{
		toks: toks, python: python,
		vars:       map[string]dagValue{},
		namespaces: map[string]bool{"ee": true},
		seen:       map[[2]string]bool{},
	}
	if err := p.parseProgram(); err != nil {
		return nil, err
	}
	if len(p.nodes) == 0 {
		return nil, invalidf("no operations found")
	}
	edges := p.edges
	if edges == nil {
		edges = [][2]string{}
	}
	return &DAGResult{DAG: DAG{Nodes: p.nodes, Edges: edges}, NodeCount: len(p.nodes)}, nil
}

// parseProgram parses statements separated by newlines or semicolons.
func (p *dagParser) parseProgram() *Error {
	for {
		for t := p.peek(); t.kind == dagNewline || t.is(";"); t = p.peek() {
			p.i++
		}
		if p.peek().kind == dagEOF {
			return nil
		}
		if err := p.parseStatement(); err != nil {
			return err
		}
		if t := p.peek(); t.kind != dagNewline && t.kind != dagEOF && !t.is(";") {
			return p.unexpected("")
		}
	}
}

// dagReserved are the words of each language that cannot name a variable.
var dagReserved = map[bool]map[string]bool{
	false: {"var": true, "let": true, "const": true, "import": true,
		"true": true, "false": true, "null": true, "undefined": true},
	true: {"import": true, "from": true, "as": true, "True": true, "False": true, "None": true},
}

// dagConstants are the literal words of each language and their values.
var dagConstants = map[bool]map[string]any{
	false: {"true": true, "false": false, "null": nil, "undefined": nil},
	true:  {"True": true, "False": false, "None": nil},
}

// reserved reports whether name is a reserved word of the script's language.
func (p *dagParser) reserved(name string) bool { return dagReserved[p.python][name] }

// dagUnsupported are keywords of either language that this compiler does
// not implement; naming them is a parse error, not an undefined variable.
var dagUnsupported = map[string]bool{
	"function": true, "return": true, "if": true, "else": true, "for": true, "while": true,
	"do": true, "switch": true, "new": true, "class": true, "this": true, "def": true,
	"lambda": true, "elif": true, "with": true, "try": true, "catch": true, "in": true,
	"not": true, "and": true, "or": true, "is": true, "yield": true, "await": true,
}

// parseStatement parses a declaration, an assignment, an import (Python) or
// an expression statement.
func (p *dagParser) parseStatement() *Error {
	t := p.peek()
	if t.kind == dagIdent {
		switch {
		case !p.python && (t.text == "var" || t.text == "let" || t.text == "const"):
			p.i++
			name := p.peek()
			if name.kind != dagIdent || p.reserved(name.text) {
				return p.unexpected("expected a variable name")
			}
			p.i++
			if err := p.expect("="); err != nil {
				return err
			}
			return p.assign(name.text)
		case p.python && (t.text == "import" || t.text == "from"):
			return p.parseImport()
		case !p.reserved(t.text) && p.toks[p.i+1].is("="):
			p.i += 2
			return p.assign(t.text)
		}
	}
	_, err := p.parseExpr()
	return err
}

// assign parses the expression of an assignment and binds it to name.
func (p *dagParser) assign(name string) *Error {
	v, err := p.parseExpr()
	if err != nil {
		return err
	}
	p.vars[name] = v
	return nil
}

// parseImport parses "import a[.b] [as c], ..." or "from a import b [as c], ..."
// and makes the names it binds namespaces.
func (p *dagParser) parseImport() *Error {
	from := p.next().text == "from"
	// dotted parses a dotted module name and answers its first part.
	dotted := func() (string, *Error) {
		t := p.next()
		if t.kind != dagIdent {
			return "", p.errAt(t, "expected a module name")
		}
		for p.accept(".") {
			if n := p.next(); n.kind != dagIdent {
				return "", p.errAt(n, "expected a module name")
			}
		}
		return t.text, nil
	}
	if from {
		if _, err := dotted(); err != nil {
			return err
		}
		if t := p.next(); !t.is("import") {
			return p.errAt(t, `expected "import"`)
		}
	}
	for {
		name, err := dotted()
		if err != nil {
			return err
		}
		if p.peek().is("as") {
			p.i++
			if name, err = dotted(); err != nil {
				return err
			}
		}
		p.namespaces[name] = true
		if !p.accept(",") {
			return nil
		}
	}
}

// parseExpr parses a primary expression followed by any method calls.
func (p *dagParser) parseExpr() (dagValue, *Error) {
	if p.depth >= dagMaxDepth {
		t := p.peek()
		return dagValue{}, dagParseErrorf(t.line, t.col, "expression nested too deeply")
	}
	p.depth++
	defer func() { p.depth-- }()
	v, err := p.parsePrimary()
	for err == nil {
		// A method chain may continue on the next line: "x\n  .f()".
		j := p.i
		for p.toks[j].kind == dagNewline {
			j++
		}
		if !p.toks[j].is(".") {
			break
		}
		p.i = j + 1
		name := p.next()
		if name.kind != dagIdent {
			return dagValue{}, p.errAt(name, "expected a method name")
		}
		if !p.peek().is("(") {
			return dagValue{}, p.unexpected(fmt.Sprintf("expected \"(\" after .%s", name.text))
		}
		v, err = p.parseCall(name.text, &v)
	}
	return v, err
}

// parsePrimary parses a literal, a list, an object, a parenthesised
// expression, a variable or a (possibly namespaced) function call.
func (p *dagParser) parsePrimary() (dagValue, *Error) {
	t := p.next()
	switch t.kind {
	case dagString:
		return dagValue{lit: t.text}, nil
	case dagNumber:
		return p.number(t, false)
	case dagPunct:
		switch t.text {
		case "-":
			n := p.next()
			if n.kind != dagNumber {
				return dagValue{}, p.errAt(n, `expected a number after "-"`)
			}
			return p.number(n, true)
		case "(":
			v, err := p.parseExpr()
			if err != nil {
				return dagValue{}, err
			}
			return v, p.expect(")")
		case "[":
			return p.parseList()
		case "{":
			return p.parseObject()
		}
	case dagIdent:
		return p.parseName(t)
	}
	if t.kind == dagEOF || t.kind == dagNewline {
		return dagValue{}, p.errAt(t, "expected an expression")
	}
	return dagValue{}, p.errAt(t, "")
}

// number converts a number token to a literal.
func (p *dagParser) number(t dagToken, neg bool) (dagValue, *Error) {
	v, err := strconv.ParseFloat(t.text, 64)
	if err != nil {
		return dagValue{}, dagParseErrorf(t.line, t.col, "invalid number %q", t.text)
	}
	if neg {
		v = -v
	}
	return dagValue{lit: v}, nil
}

// parseName parses what starts with an identifier: a constant, a function
// call, a variable, or a call through a namespace ("ee.Image(...)",
// "Export.image.toDrive(...)"). A name that is no variable may start a
// namespace if it is an imported module, "ee", or capitalised.
func (p *dagParser) parseName(t dagToken) (dagValue, *Error) {
	if v, ok := dagConstants[p.python][t.text]; ok {
		return dagValue{lit: v}, nil
	}
	if p.reserved(t.text) {
		return dagValue{}, p.errAt(t, "")
	}
	if dagUnsupported[t.text] {
		return dagValue{}, dagParseErrorf(t.line, t.col, "%q is not supported", t.text)
	}
	if p.peek().is("(") {
		return p.parseCall(t.text, nil)
	}
	if v, ok := p.vars[t.text]; ok {
		return v, nil
	}
	capital := t.text[0] >= 'A' && t.text[0] <= 'Z'
	if (p.namespaces[t.text] || capital) && p.peek().is(".") {
		var path []string // an imported module's name is left out of the op
		if !p.namespaces[t.text] {
			path = append(path, t.text)
		}
		for p.accept(".") {
			n := p.next()
			if n.kind != dagIdent {
				return dagValue{}, p.errAt(n, "expected a name")
			}
			path = append(path, n.text)
			if p.peek().is("(") {
				return p.parseCall(strings.Join(path, "."), nil)
			}
		}
		return dagValue{}, p.unexpected(fmt.Sprintf("expected \"(\" after %s", strings.Join(path, ".")))
	}
	return dagValue{}, invalidf("undefined variable %q at line %d", t.text, t.line)
}

// parseList parses the rest of "[a, b, ...]".
func (p *dagParser) parseList() (dagValue, *Error) {
	items := []any{}
	var deps []string
	for !p.accept("]") {
		item, err := p.parseExpr()
		if err != nil {
			return dagValue{}, err
		}
		if lit, ok := item.split(&deps); ok {
			items = append(items, lit)
		}
		if !p.accept(",") {
			if err := p.expect("]"); err != nil {
				return dagValue{}, err
			}
			break
		}
	}
	return dagValue{lit: items, deps: deps}, nil
}

// parseObject parses the rest of "{key: value, ...}" (keys are names or strings).
func (p *dagParser) parseObject() (dagValue, *Error) {
	obj := map[string]any{}
	var deps []string
	for !p.accept("}") {
		k := p.next()
		if k.kind != dagIdent && k.kind != dagString {
			return dagValue{}, p.errAt(k, "expected a key")
		}
		if err := p.expect(":"); err != nil {
			return dagValue{}, err
		}
		item, err := p.parseExpr()
		if err != nil {
			return dagValue{}, err
		}
		if lit, ok := item.split(&deps); ok {
			obj[k.text] = lit
		}
		if !p.accept(",") {
			if err := p.expect("}"); err != nil {
				return dagValue{}, err
			}
			break
		}
	}
	return dagValue{lit: obj, deps: deps}, nil
}

// split prepares a value for a list, an object or keyword arguments: it adds
// the nodes the value is or holds to deps and answers its literal, if it is one.
func (v dagValue) split(deps *[]string) (any, bool) {
	if v.node != "" {
		*deps = append(*deps, v.node)
		return nil, false
	}
	*deps = append(*deps, v.deps...)
	return v.lit, true
}

// parseCall parses the arguments of a call of op (recv is the receiver of a
// method call) and adds its node once they are evaluated.
func (p *dagParser) parseCall(op string, recv *dagValue) (dagValue, *Error) {
	if err := p.expect("("); err != nil {
		return dagValue{}, err
	}
	var args []dagValue
	var kwargs map[string]any
	var kwdeps []string
	for !p.accept(")") {
		if t := p.peek(); p.python && t.kind == dagIdent && p.toks[p.i+1].is("=") {
			p.i += 2
			v, err := p.parseExpr()
			if err != nil {
				return dagValue{}, err
			}
			if kwargs == nil {
				kwargs = map[string]any{}
			}
			if lit, ok := v.split(&kwdeps); ok {
				kwargs[t.text] = lit
			}
		} else {
			v, err := p.parseExpr()
			if err != nil {
				return dagValue{}, err
			}
			args = append(args, v)
		}
		if !p.accept(",") {
			if err := p.expect(")"); err != nil {
				return dagValue{}, err
			}
			break
		}
	}
	if kwargs != nil {
		args = append(args, dagValue{lit: kwargs, deps: kwdeps})
	}
	return p.addNode(op, recv, args)
}

// addNode appends the node of a call: node arguments (and the receiver)
// become edges into it, literal ones its args.
func (p *dagParser) addNode(op string, recv *dagValue, args []dagValue) (dagValue, *Error) {
	if len(p.nodes) >= dagMaxNodes {
		return dagValue{}, invalidf("too many operations: more than %d nodes", dagMaxNodes)
	}
	id := "n" + strconv.Itoa(len(p.nodes)+1)
	lits := []any{}
	use := func(v dagValue) {
		if v.node != "" {
			p.edge(v.node, id)
			return
		}
		for _, d := range v.deps {
			p.edge(d, id)
		}
		if len(v.deps) > 0 && isEmptyComposite(v.lit) {
			return // a list or object that held only nodes is all edges
		}
		lits = append(lits, v.lit)
	}
	if recv != nil {
		use(*recv)
	}
	for _, a := range args {
		use(a)
	}
	p.nodes = append(p.nodes, DAGNode{ID: id, Op: op, Args: lits})
	return dagValue{node: id}, nil
}

// edge adds the edge from → to once.
func (p *dagParser) edge(from, to string) {
	e := [2]string{from, to}
	if !p.seen[e] {
		p.seen[e] = true
		p.edges = append(p.edges, e)
	}
}

// isEmptyComposite reports whether v is an empty list or object.
func isEmptyComposite(v any) bool {
	switch v := v.(type) {
	case []any:
		return len(v) == 0
	case map[string]any:
		return len(v) == 0
	}
	return false
}
