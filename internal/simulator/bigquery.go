package simulator

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// Limits of a big-data query.
const (
	// queryDefaultMaxRows is the row cap used when a request gives none.
	queryDefaultMaxRows = 1000
	// queryMaxMaxRows is the largest max_rows accepted.
	queryMaxMaxRows = 100000
	// sqlMaxDepth bounds the nesting of parentheses in a WHERE clause.
	sqlMaxDepth = 100
)

// sqlType is the type of a table column.
type sqlType int

// The column types.
const (
	sqlText sqlType = iota
	sqlFloat
	sqlInt
)

// String answers the SQL name of the type.
func (t sqlType) String() string {
	switch t {
	case sqlText:
		return "TEXT"
	case sqlFloat:
		return "FLOAT"
	default:
		return "INT"
	}
}

// width answers the bytes one value of the type counts for in bytes_scanned.
func (t sqlType) width() int64 {
	if t == sqlText {
		return 16
	}
	return 8
}

// sqlColumn is one column of a table.
type sqlColumn struct {
	name string
	typ  sqlType
}

// sqlTable is one table of the simulated warehouse. Its rows hold string,
// float64 (rounded to 2 decimals) and int values in column order.
type sqlTable struct {
	name    string
	columns []sqlColumn
	rows    [][]any
}

// column answers the index of the column called name, or -1.
func (t *sqlTable) column(name string) int {
	return slices.IndexFunc(t.columns, func(c sqlColumn) bool { return c.name == name })
}

// sqlTables are the tables of the simulated warehouse by name, generated
// once and deterministically.
var sqlTables = sync.OnceValue(func() map[string]*sqlTable {
	return map[string]*sqlTable{
		"landcover":       landcoverTable(),
		"elevation_stats": elevationStatsTable(),
	}
})

// mix64 is the splitmix64 finaliser, the source of the tables' pseudo-random values.
func mix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// unitHash answers a value in [0, 1) determined by a, b and c.
func unitHash(a, b, c uint64) float64 {
	return float64(mix64(mix64(mix64(a)^b)^c)>>11) / (1 << 53)
}

// round2 rounds v to 2 decimals.
func round2(v float64) float64 { return math.Round(v*100) / 100 }

// landcoverTable generates landcover(region, class, area_km2, year): for
// every region r1..r50 and class, two of the years 2020..2026 (500 rows).
func landcoverTable() *sqlTable {
	t := &sqlTable{name: "landcover", columns: []sqlColumn{
		{"region", sqlText}, {"class", sqlText}, {"area_km2", sqlFloat}, {"year", sqlInt},
	}}
	classes := []string{"forest", "cropland", "urban", "water", "grassland"}
	typical := []float64{120, 90, 35, 20, 60}
	for r := 1; r <= 50; r++ {
		for ci, class := range classes {
			for y := range 7 {
				if (r*3+ci*5+y)%7 >= 2 {
					continue
				}
				u := unitHash(uint64(r), uint64(ci), uint64(y))
				area := round2(typical[ci] * (0.3 + 1.4*u))
				t.rows = append(t.rows, []any{fmt.Sprintf("r%d", r), class, area, 2020 + y})
			}
		}
	}
	return t
}

// elevationStatsTable generates elevation_stats(coverage_id, tile, min_m,
// max_m, mean_m): 200 one-degree tiles (80 of dem_30m, 60 each of dem_90m and
// srtm_30m), their statistics sampled from the coverages' elevation models.
func elevationStatsTable() *sqlTable {
	t := &sqlTable{name: "elevation_stats", columns: []sqlColumn{
		{"coverage_id", sqlText}, {"tile", sqlText}, {"min_m", sqlFloat}, {"max_m", sqlFloat}, {"mean_m", sqlFloat},
	}}
	extents := []struct {
		id               string
		lat0, lat1, lon0 int
	}{
		{"dem_30m", 30, 38, 110},
		{"dem_90m", 20, 26, 100},
		{"srtm_30m", 40, 46, 110},
	}
	const samples = 9
	for _, e := range extents {
		f := &coverages[e.id].field
		for lat := e.lat0; lat < e.lat1; lat++ {
			for lon := e.lon0; lon < e.lon0+10; lon++ {
				lo, hi, sum := math.Inf(1), math.Inf(-1), 0.0
				for i := range samples {
					for j := range samples {
						z := f.at(float64(lon)+(float64(j)+0.5)/samples, float64(lat)+(float64(i)+0.5)/samples)
						lo, hi, sum = min(lo, z), max(hi, z), sum+z
					}
				}
				tile := fmt.Sprintf("N%02dE%03d", lat, lon)
				t.rows = append(t.rows, []any{e.id, tile, round2(lo), round2(hi), round2(sum / samples / samples)})
			}
		}
	}
	return t
}

// sqlTokKind is the kind of a SQL token.
type sqlTokKind int

// The SQL token kinds.
const (
	sqlEOF sqlTokKind = iota
	sqlIdent
	sqlNumber
	sqlString
	sqlSymbol
)

// sqlToken is one token of a query. text is the source text, except for a
// string literal, where it is the unescaped value; pos is the 1-based byte
// position of its first character.
type sqlToken struct {
	kind sqlTokKind
	text string
	raw  string
	pos  int
}

// String describes the token for an error message.
func (t sqlToken) String() string {
	if t.kind == sqlEOF {
		return "end of input"
	}
	return strconv.Quote(t.raw)
}

// is reports whether the token is the keyword or symbol s (keywords
// case-insensitively).
func (t sqlToken) is(s string) bool {
	switch t.kind {
	case sqlIdent:
		return strings.EqualFold(t.text, s)
	case sqlSymbol:
		return t.text == s
	}
	return false
}

// sqlKeywords are the reserved words, which cannot name a table or column.
var sqlKeywords = map[string]bool{
	"select": true, "from": true, "where": true, "and": true, "or": true, "not": true,
	"order": true, "by": true, "asc": true, "desc": true, "limit": true, "count": true,
}

// sqlSyntaxf builds the 40001 error of a query that does not parse.
func sqlSyntaxf(pos int, format string, args ...any) *Error {
	return invalidf("syntax error at position %d: %s", pos, fmt.Sprintf(format, args...))
}

// sqlTokenize splits a query into tokens, ending with an sqlEOF token.
func sqlTokenize(src string) ([]sqlToken, *Error) {
	var toks []sqlToken
	i := 0
	for i < len(src) {
		c := src[i]
		start := i
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
			continue
		case c == '-' && i+1 < len(src) && src[i+1] == '-': // comment to end of line
			for i < len(src) && src[i] != '\n' {
				i++
			}
			continue
		case isSQLIdentStart(c):
			for i < len(src) && (isSQLIdentStart(src[i]) || isDigit(src[i])) {
				i++
			}
			toks = append(toks, sqlToken{kind: sqlIdent, text: src[start:i], raw: src[start:i], pos: start + 1})
		case isDigit(c) || (c == '.' && i+1 < len(src) && isDigit(src[i+1])):
			i = scanNumber(src, i)
			toks = append(toks, sqlToken{kind: sqlNumber, text: src[start:i], raw: src[start:i], pos: start + 1})
		case c == '\'':
			var b strings.Builder
			i++
			for {
				if i >= len(src) {
					return nil, sqlSyntaxf(start+1, "unterminated string literal")
				}
				if src[i] == '\'' {
					if i+1 < len(src) && src[i+1] == '\'' {
						b.WriteByte('\'')
						i += 2
						continue
					}
					i++
					break
				}
				b.WriteByte(src[i])
				i++
			}
			toks = append(toks, sqlToken{kind: sqlString, text: b.String(), raw: src[start:i], pos: start + 1})
		default:
			two := ""
			if i+1 < len(src) {
				two = src[i : i+2]
			}
			switch {
			case two == "<=" || two == ">=" || two == "!=" || two == "<>":
				i += 2
			case strings.IndexByte("*,();=<>-", c) >= 0:
				i++
			default:
				r := []rune(src[i:min(i+4, len(src))])[0]
				return nil, sqlSyntaxf(start+1, "unexpected character %q", r)
			}
			toks = append(toks, sqlToken{kind: sqlSymbol, text: src[start:i], raw: src[start:i], pos: start + 1})
		}
	}
	toks = append(toks, sqlToken{kind: sqlEOF, pos: len(src) + 1})
	return toks, nil
}

// isSQLIdentStart reports whether c may start an identifier.
func isSQLIdentStart(c byte) bool {
	return c == '_' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

// isDigit reports whether c is an ASCII digit.
func isDigit(c byte) bool { return c >= '0' && c <= '9' }

// scanNumber answers the end of the number that starts at src[i]: digits,
// an optional fraction and an optional exponent.
func scanNumber(src string, i int) int {
	for i < len(src) && isDigit(src[i]) {
		i++
	}
	if i < len(src) && src[i] == '.' {
		i++
		for i < len(src) && isDigit(src[i]) {
			i++
		}
	}
	if i < len(src) && (src[i] == 'e' || src[i] == 'E') {
		j := i + 1
		if j < len(src) && (src[j] == '+' || src[j] == '-') {
			j++
		}
		if j < len(src) && isDigit(src[j]) {
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			i = j
		}
	}
	return i
}

// sqlName is an identifier of a query with its position.
type sqlName struct {
	name string // lower case
	pos  int
}

// sqlQuery is a parsed SELECT statement.
type sqlQuery struct {
	star    bool
	count   bool
	columns []sqlName
	table   sqlName
	where   sqlExpr // nil without WHERE
	orderBy *sqlName
	desc    bool
	limit   int // -1 without LIMIT
}

// sqlExpr is a WHERE condition: *sqlLogic, *sqlNot or *sqlCompare.
type sqlExpr any

// sqlLogic is "l AND r" or "l OR r".
type sqlLogic struct {
	and  bool
	l, r sqlExpr
}

// sqlNot is "NOT e".
type sqlNot struct{ e sqlExpr }

// sqlCompare is "l op r".
type sqlCompare struct {
	op   string
	l, r sqlOperand
}

// sqlOperand is a column or a literal (string or float64) of a comparison.
type sqlOperand struct {
	col   *sqlName
	value any
	raw   string
}

// describe names the operand and its type for an error message.
func (o sqlOperand) describe(t sqlType) string {
	switch {
	case o.col != nil:
		return fmt.Sprintf("%s (%s)", o.col.name, t)
	case t == sqlText:
		return o.raw + " (string)"
	}
	return o.raw + " (number)"
}

// sqlParser is a recursive-descent parser over the tokens of one query.
type sqlParser struct {
	toks  []sqlToken
	i     int
	depth int
}

// peek answers the current token.
func (p *sqlParser) peek() sqlToken { return p.toks[p.i] }

// next consumes and answers the current token.
func (p *sqlParser) next() sqlToken {
	t := p.toks[p.i]
	if t.kind != sqlEOF {
		p.i++
	}
	return t
}

// accept consumes the current token if it is the keyword or symbol s.
func (p *sqlParser) accept(s string) bool {
	if p.peek().is(s) {
		p.i++
		return true
	}
	return false
}

// expect consumes the keyword or symbol s or fails.
func (p *sqlParser) expect(s string) *Error {
	if p.accept(s) {
		return nil
	}
	t := p.peek()
	return sqlSyntaxf(t.pos, "expected %s, found %s", s, t)
}

// name consumes an identifier that is not a keyword; what names it in errors.
func (p *sqlParser) name(what string) (sqlName, *Error) {
	t := p.peek()
	if t.kind != sqlIdent || sqlKeywords[strings.ToLower(t.text)] {
		return sqlName{}, sqlSyntaxf(t.pos, "expected %s, found %s", what, t)
	}
	p.i++
	return sqlName{name: strings.ToLower(t.text), pos: t.pos}, nil
}

// parseQuery parses a whole statement.
func (p *sqlParser) parseQuery() (*sqlQuery, *Error) {
	q := &sqlQuery{limit: -1}
	if err := p.expect("SELECT"); err != nil {
		return nil, err
	}
	if err := p.parseSelectList(q); err != nil {
		return nil, err
	}
	if err := p.expect("FROM"); err != nil {
		return nil, err
	}
	var err *Error
	if q.table, err = p.name("table name"); err != nil {
		return nil, err
	}
	if p.accept("WHERE") {
		if q.where, err = p.parseOr(); err != nil {
			return nil, err
		}
	}
	if p.accept("ORDER") {
		if err := p.expect("BY"); err != nil {
			return nil, err
		}
		col, err := p.name("column name")
		if err != nil {
			return nil, err
		}
		q.orderBy = &col
		if !p.accept("ASC") && p.accept("DESC") {
			q.desc = true
		}
	}
	if p.accept("LIMIT") {
		t := p.next()
		n, convErr := strconv.Atoi(t.text)
		if t.kind != sqlNumber || convErr != nil || n < 0 {
			return nil, sqlSyntaxf(t.pos, "expected a non-negative integer after LIMIT, found %s", t)
		}
		q.limit = n
	}
	p.accept(";")
	if t := p.peek(); t.kind != sqlEOF {
		return nil, sqlSyntaxf(t.pos, "expected end of query, found %s", t)
	}
	return q, nil
}

// parseSelectList parses "*", "COUNT(*)" or a list of columns.
func (p *sqlParser) parseSelectList(q *sqlQuery) *Error {
	t := p.peek()
	switch {
	case p.accept("*"):
		q.star = true
		return nil
	case t.is("COUNT"):
		p.i++
		for _, s := range []string{"(", "*", ")"} {
			if err := p.expect(s); err != nil {
				return err
			}
		}
		q.count = true
		if p.peek().is(",") {
			return sqlSyntaxf(p.peek().pos, "COUNT(*) cannot be combined with other columns")
		}
		return nil
	}
	for {
		col, err := p.name("column name, * or COUNT(*)")
		if err != nil {
			return err
		}
		q.columns = append(q.columns, col)
		if !p.accept(",") {
			return nil
		}
	}
}

// parseOr parses "and {OR and}".
func (p *sqlParser) parseOr() (sqlExpr, *Error) {
	l, err := p.parseAnd()
	for err == nil && p.accept("OR") {
		var r sqlExpr
		if r, err = p.parseAnd(); err == nil {
			l = &sqlLogic{l: l, r: r}
		}
	}
	return l, err
}

// parseAnd parses "cond {AND cond}".
func (p *sqlParser) parseAnd() (sqlExpr, *Error) {
	l, err := p.parseCond()
	for err == nil && p.accept("AND") {
		var r sqlExpr
		if r, err = p.parseCond(); err == nil {
			l = &sqlLogic{and: true, l: l, r: r}
		}
	}
	return l, err
}

// parseCond parses "NOT cond", "( or )" or "operand op operand".
func (p *sqlParser) parseCond() (sqlExpr, *Error) {
	t := p.peek()
	if p.depth >= sqlMaxDepth {
		return nil, sqlSyntaxf(t.pos, "condition nested too deeply")
	}
	p.depth++
	defer func() { p.depth-- }()
	if p.accept("NOT") {
		e, err := p.parseCond()
		if err != nil {
			return nil, err
		}
		return &sqlNot{e}, nil
	}
	if p.accept("(") {
		e, err := p.parseOr()
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		return e, nil
	}
	l, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	op := p.next()
	if op.kind != sqlSymbol || !slices.Contains(sqlCompareOps, op.text) {
		return nil, sqlSyntaxf(op.pos, "expected comparison operator, found %s", op)
	}
	r, err := p.parseOperand()
	if err != nil {
		return nil, err
	}
	return &sqlCompare{op: op.text, l: l, r: r}, nil
}

// parseOperand parses a column, a string or an optionally negative number.
func (p *sqlParser) parseOperand() (sqlOperand, *Error) {
	t := p.peek()
	switch {
	case t.kind == sqlString:
		p.i++
		return sqlOperand{value: t.text, raw: t.raw}, nil
	case t.kind == sqlNumber || t.is("-"):
		p.i++
		neg := t.is("-")
		if neg {
			if n := p.peek(); n.kind != sqlNumber {
				return sqlOperand{}, sqlSyntaxf(n.pos, "expected number after -, found %s", n)
			}
			t = p.next()
		}
		v, err := strconv.ParseFloat(t.text, 64)
		if err != nil || math.IsInf(v, 0) {
			return sqlOperand{}, sqlSyntaxf(t.pos, "invalid number %s", t)
		}
		raw := t.raw
		if neg {
			v, raw = -v, "-"+raw
		}
		return sqlOperand{value: v, raw: raw}, nil
	case t.kind == sqlIdent && !sqlKeywords[strings.ToLower(t.text)]:
		col, _ := p.name("")
		return sqlOperand{col: &col, raw: t.raw}, nil
	}
	return sqlOperand{}, sqlSyntaxf(t.pos, "expected column, string or number, found %s", t)
}

// sqlCompareOps are the comparison operators.
var sqlCompareOps = []string{"=", "!=", "<>", "<", "<=", ">", ">="}

// sqlPredicate is a compiled WHERE condition.
type sqlPredicate func(row []any) bool

// bindOperand resolves an operand against a table: it answers a function
// giving its value in a row and its type.
func bindOperand(t *sqlTable, o sqlOperand) (func([]any) any, sqlType, *Error) {
	if o.col != nil {
		i := t.column(o.col.name)
		if i < 0 {
			return nil, 0, unknownColumn(t, o.col.name)
		}
		return func(row []any) any { return row[i] }, t.columns[i].typ, nil
	}
	v := o.value
	typ := sqlFloat
	if _, ok := v.(string); ok {
		typ = sqlText
	}
	return func([]any) any { return v }, typ, nil
}

// unknownColumn builds the error of a column the table lacks.
func unknownColumn(t *sqlTable, name string) *Error {
	names := make([]string, len(t.columns))
	for i, c := range t.columns {
		names[i] = c.name
	}
	return invalidf("unknown column %q in table %s (columns: %s)", name, t.name, strings.Join(names, ", "))
}

// bindExpr compiles a WHERE condition against a table.
func bindExpr(t *sqlTable, e sqlExpr) (sqlPredicate, *Error) {
	switch e := e.(type) {
	case *sqlLogic:
		l, err := bindExpr(t, e.l)
		if err != nil {
			return nil, err
		}
		r, err := bindExpr(t, e.r)
		if err != nil {
			return nil, err
		}
		if e.and {
			return func(row []any) bool { return l(row) && r(row) }, nil
		}
		return func(row []any) bool { return l(row) || r(row) }, nil
	case *sqlNot:
		inner, err := bindExpr(t, e.e)
		if err != nil {
			return nil, err
		}
		return func(row []any) bool { return !inner(row) }, nil
	case *sqlCompare:
		l, lt, err := bindOperand(t, e.l)
		if err != nil {
			return nil, err
		}
		r, rt, err := bindOperand(t, e.r)
		if err != nil {
			return nil, err
		}
		if (lt == sqlText) != (rt == sqlText) {
			return nil, invalidf("type mismatch: cannot compare %s with %s", e.l.describe(lt), e.r.describe(rt))
		}
		op := e.op
		return func(row []any) bool { return compareOp(op, compareValues(l(row), r(row))) }, nil
	}
	return func([]any) bool { return true }, nil
}

// compareValues orders two values of compatible types.
func compareValues(a, b any) int {
	if as, ok := a.(string); ok {
		bs, _ := b.(string)
		return strings.Compare(as, bs)
	}
	return cmp.Compare(toFloat(a), toFloat(b))
}

// toFloat answers a numeric value as float64.
func toFloat(v any) float64 {
	switch v := v.(type) {
	case float64:
		return v
	case int:
		return float64(v)
	}
	return 0
}

// compareOp applies a comparison operator to the result of compareValues.
func compareOp(op string, c int) bool {
	switch op {
	case "=":
		return c == 0
	case "!=", "<>":
		return c != 0
	case "<":
		return c < 0
	case "<=":
		return c <= 0
	case ">":
		return c > 0
	default:
		return c >= 0
	}
}

// sqlExprColumns adds the columns an expression refers to to seen.
func sqlExprColumns(e sqlExpr, seen map[string]bool) {
	switch e := e.(type) {
	case *sqlLogic:
		sqlExprColumns(e.l, seen)
		sqlExprColumns(e.r, seen)
	case *sqlNot:
		sqlExprColumns(e.e, seen)
	case *sqlCompare:
		for _, o := range []sqlOperand{e.l, e.r} {
			if o.col != nil {
				seen[o.col.name] = true
			}
		}
	}
}

// runQuery runs the query of POST /api/bigquery/query.
func runQuery(req QueryRequest) (*QueryResult, *Error) {
	if strings.TrimSpace(req.SQL) == "" {
		return nil, invalidf("sql is required")
	}
	maxRows := req.MaxRows
	if maxRows == 0 {
		maxRows = queryDefaultMaxRows
	}
	if maxRows < 0 || maxRows > queryMaxMaxRows {
		return nil, invalidf("max_rows must be between 0 and %d (0 means %d), got %d", queryMaxMaxRows, queryDefaultMaxRows, req.MaxRows)
	}
	toks, err := sqlTokenize(req.SQL)
	if err != nil {
		return nil, err
	}
	p := &sqlParser{toks: toks}
	q, err := p.parseQuery()
	if err != nil {
		return nil, err
	}
	return execQuery(q, maxRows)
}

// execQuery binds a parsed query to its table and runs it.
func execQuery(q *sqlQuery, maxRows int) (*QueryResult, *Error) {
	tables := sqlTables()
	t, ok := tables[q.table.name]
	if !ok {
		return nil, invalidf("unknown table %q (tables: %s)", q.table.name, strings.Join(slices.Sorted(maps.Keys(tables)), ", "))
	}
	used := map[string]bool{}
	var proj []int
	var columns []string
	switch {
	case q.count:
		columns = []string{"count"}
	case q.star:
		for i, c := range t.columns {
			proj = append(proj, i)
			columns = append(columns, c.name)
			used[c.name] = true
		}
	default:
		for _, c := range q.columns {
			i := t.column(c.name)
			if i < 0 {
				return nil, unknownColumn(t, c.name)
			}
			proj = append(proj, i)
			columns = append(columns, c.name)
			used[c.name] = true
		}
	}
	pred := sqlPredicate(func([]any) bool { return true })
	if q.where != nil {
		var err *Error
		if pred, err = bindExpr(t, q.where); err != nil {
			return nil, err
		}
		sqlExprColumns(q.where, used)
	}
	order := -1
	if q.orderBy != nil {
		if order = t.column(q.orderBy.name); order < 0 {
			return nil, unknownColumn(t, q.orderBy.name)
		}
		used[q.orderBy.name] = true
	}

	var matched [][]any
	for _, row := range t.rows {
		if pred(row) {
			matched = append(matched, row)
		}
	}
	if order >= 0 && !q.count {
		slices.SortStableFunc(matched, func(a, b []any) int {
			c := compareValues(a[order], b[order])
			if q.desc {
				return -c
			}
			return c
		})
	}
	var rows [][]any
	if q.count {
		rows = [][]any{{len(matched)}}
	} else {
		rows = make([][]any, len(matched))
		for i, src := range matched {
			row := make([]any, len(proj))
			for j, c := range proj {
				row[j] = src[c]
			}
			rows[i] = row
		}
	}
	if q.limit >= 0 && len(rows) > q.limit {
		rows = rows[:q.limit]
	}
	truncated := len(rows) > maxRows
	if truncated {
		rows = rows[:maxRows]
	}

	var rowBytes int64
	for _, c := range t.columns {
		if used[c.name] {
			rowBytes += c.typ.width()
		}
	}
	rowBytes = max(rowBytes, 8) // COUNT(*) alone still reads the row index
	return &QueryResult{
		Columns:      columns,
		Rows:         rows,
		RowCount:     len(rows),
		Truncated:    truncated,
		BytesScanned: int64(len(t.rows)) * rowBytes,
	}, nil
}
