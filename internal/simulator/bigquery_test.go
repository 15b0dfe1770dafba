package simulator

import (
	"encoding/json"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// mustQuery runs a query that must succeed.
func mustQuery(t *testing.T, sql string, maxRows int) *QueryResult {
	t.Helper()
	r, err := runQuery(QueryRequest{SQL: sql, MaxRows: maxRows})
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if r.RowCount != len(r.Rows) {
		t.Errorf("row_count %d != len(rows) %d", r.RowCount, len(r.Rows))
	}
	return r
}

// countRows counts the landcover rows that satisfy keep.
func countRows(keep func(region, class string, area float64, year int) bool) int {
	n := 0
	for _, r := range sqlTables()["landcover"].rows {
		if keep(r[0].(string), r[1].(string), r[2].(float64), r[3].(int)) {
			n++
		}
	}
	return n
}

// TestQueryTables checks the size, ranges and rounding of the generated tables.
func TestQueryTables(t *testing.T) {
	tables := sqlTables()
	if n := len(tables["landcover"].rows); n != 500 {
		t.Errorf("landcover has %d rows, want 500", n)
	}
	if n := len(tables["elevation_stats"].rows); n != 200 {
		t.Errorf("elevation_stats has %d rows, want 200", n)
	}
	years, regions := map[int]bool{}, map[string]bool{}
	for _, r := range tables["landcover"].rows {
		years[r[3].(int)] = true
		regions[r[0].(string)] = true
	}
	if len(years) != 7 || !years[2020] || !years[2026] || len(regions) != 50 {
		t.Errorf("years %v, %d regions", years, len(regions))
	}
	for _, r := range tables["elevation_stats"].rows {
		lo, hi, mean := r[2].(float64), r[3].(float64), r[4].(float64)
		if !(lo <= mean && mean <= hi) {
			t.Errorf("%v: min/mean/max out of order", r)
		}
	}
	for name, tab := range tables {
		for _, r := range tab.rows {
			for _, v := range r {
				if f, ok := v.(float64); ok && math.Abs(f*100-math.Round(f*100)) > 1e-6 {
					t.Errorf("%s: %v not rounded to 2 decimals", name, f)
				}
			}
		}
	}
}

// TestQueryContractExample checks the contract's example query.
func TestQueryContractExample(t *testing.T) {
	r := mustQuery(t, "SELECT region, area_km2 FROM landcover WHERE class = 'forest' LIMIT 10", 1000)
	if !slices.Equal(r.Columns, []string{"region", "area_km2"}) {
		t.Errorf("columns = %v", r.Columns)
	}
	if r.RowCount != 10 || r.Truncated {
		t.Errorf("row_count %d truncated %v, want 10 false", r.RowCount, r.Truncated)
	}
	for _, row := range r.Rows {
		if _, ok := row[0].(string); !ok || len(row) != 2 {
			t.Errorf("row %v", row)
		}
		if _, ok := row[1].(float64); !ok {
			t.Errorf("area %v is not a float64", row[1])
		}
	}
	// 500 rows × (region 16 + class 16 + area_km2 8) bytes.
	if r.BytesScanned != 20000 {
		t.Errorf("bytes_scanned = %d, want 20000", r.BytesScanned)
	}
	b, err := json.Marshal(r)
	if err != nil || !strings.HasPrefix(string(b), `{"columns":["region","area_km2"],"rows":[["r`) {
		t.Errorf("json %s %v", b, err)
	}
}

// TestQueryFilter checks WHERE conditions against a direct count of the table.
func TestQueryFilter(t *testing.T) {
	cases := []struct {
		where string
		keep  func(region, class string, area float64, year int) bool
	}{
		{"class = 'forest'", func(_, c string, _ float64, _ int) bool { return c == "forest" }},
		{"class != 'forest'", func(_, c string, _ float64, _ int) bool { return c != "forest" }},
		{"class <> 'forest'", func(_, c string, _ float64, _ int) bool { return c != "forest" }},
		{"year >= 2024", func(_, _ string, _ float64, y int) bool { return y >= 2024 }},
		{"year > 2024", func(_, _ string, _ float64, y int) bool { return y > 2024 }},
		{"year < 2022", func(_, _ string, _ float64, y int) bool { return y < 2022 }},
		{"year <= 2022.5", func(_, _ string, _ float64, y int) bool { return y <= 2022 }},
		{"area_km2 > 100 AND class = 'forest'", func(_, c string, a float64, _ int) bool { return a > 100 && c == "forest" }},
		{"class = 'water' OR class = 'urban' AND year = 2020", func(_, c string, _ float64, y int) bool {
			return c == "water" || (c == "urban" && y == 2020)
		}},
		{"(class = 'water' OR class = 'urban') AND year = 2020", func(_, c string, _ float64, y int) bool {
			return (c == "water" || c == "urban") && y == 2020
		}},
		{"NOT class = 'water'", func(_, c string, _ float64, _ int) bool { return c != "water" }},
		{"region = 'r7'", func(r, _ string, _ float64, _ int) bool { return r == "r7" }},
		{"'r7' = region", func(r, _ string, _ float64, _ int) bool { return r == "r7" }},
		{"area_km2 > -1", func(string, string, float64, int) bool { return true }},
		{"region = 'it''s'", func(string, string, float64, int) bool { return false }},
		{"1 = 1", func(string, string, float64, int) bool { return true }},
		{"year = area_km2", func(_, _ string, a float64, y int) bool { return float64(y) == a }},
	}
	for _, c := range cases {
		t.Run(c.where, func(t *testing.T) {
			want := countRows(c.keep)
			r := mustQuery(t, "SELECT COUNT(*) FROM landcover WHERE "+c.where, 0)
			if !slices.Equal(r.Columns, []string{"count"}) || r.RowCount != 1 || r.Rows[0][0] != want {
				t.Errorf("count = %v, want [[%d]]", r.Rows, want)
			}
			all := mustQuery(t, "select * from landcover where "+c.where+";", 100000)
			if all.RowCount != want || all.Truncated {
				t.Errorf("SELECT * answered %d rows (truncated %v), want %d", all.RowCount, all.Truncated, want)
			}
			for _, row := range all.Rows {
				if !c.keep(row[0].(string), row[1].(string), row[2].(float64), row[3].(int)) {
					t.Errorf("row %v does not satisfy %s", row, c.where)
				}
			}
		})
	}
}

// TestQueryOrderBy checks ORDER BY in both directions and that ties keep table order.
func TestQueryOrderBy(t *testing.T) {
	cases := []struct {
		sql  string
		desc bool
	}{
		{"SELECT region, area_km2 FROM landcover ORDER BY area_km2", false},
		{"SELECT region, area_km2 FROM landcover ORDER BY area_km2 ASC", false},
		{"SELECT region, area_km2 FROM landcover ORDER BY area_km2 DESC", true},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			r := mustQuery(t, c.sql, 0)
			if r.RowCount != 500 {
				t.Fatalf("%d rows", r.RowCount)
			}
			ok := slices.IsSortedFunc(r.Rows, func(a, b []any) int {
				c2 := compareValues(a[1], b[1])
				if c.desc {
					return -c2
				}
				return c2
			})
			if !ok {
				t.Errorf("rows not sorted")
			}
		})
	}
	top := mustQuery(t, "SELECT coverage_id, tile, max_m FROM elevation_stats ORDER BY max_m DESC LIMIT 1", 0)
	highest := 0.0
	for _, row := range sqlTables()["elevation_stats"].rows {
		highest = max(highest, row[3].(float64))
	}
	if top.RowCount != 1 || top.Rows[0][2] != highest {
		t.Errorf("highest tile %v, want max_m %v", top.Rows, highest)
	}
	// Ties keep table order: a stable sort.
	byYear := mustQuery(t, "SELECT region, year FROM landcover WHERE class = 'urban' ORDER BY year", 0)
	if !slices.IsSortedFunc(byYear.Rows, func(a, b []any) int {
		if c := compareValues(a[1], b[1]); c != 0 {
			return c
		}
		return compareValues(regionNum(a[0]), regionNum(b[0]))
	}) {
		t.Errorf("ties are not in table order")
	}
}

// regionNum answers the number of a region id such as "r12".
func regionNum(v any) any {
	n := 0
	for _, c := range strings.TrimPrefix(v.(string), "r") {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestQueryLimitAndTruncation checks LIMIT, max_rows and truncated.
func TestQueryLimitAndTruncation(t *testing.T) {
	cases := []struct {
		sql       string
		maxRows   int
		rows      int
		truncated bool
	}{
		{"SELECT * FROM landcover", 0, 500, false},
		{"SELECT * FROM landcover", 100, 100, true},
		{"SELECT * FROM landcover", 500, 500, false},
		{"SELECT * FROM landcover", 499, 499, true},
		{"SELECT * FROM landcover LIMIT 10", 5, 5, true},
		{"SELECT * FROM landcover LIMIT 3", 5, 3, false},
		{"SELECT * FROM landcover LIMIT 0", 5, 0, false},
		{"SELECT * FROM landcover LIMIT 100000", 0, 500, false},
		{"SELECT * FROM elevation_stats", 0, 200, false},
		{"SELECT * FROM landcover WHERE region = 'nowhere'", 0, 0, false},
		{"SELECT COUNT(*) FROM landcover", 1, 1, false},
		{"SELECT COUNT(*) FROM landcover LIMIT 0", 1, 0, false},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			r := mustQuery(t, c.sql, c.maxRows)
			if r.RowCount != c.rows || r.Truncated != c.truncated {
				t.Errorf("row_count %d truncated %v, want %d %v", r.RowCount, r.Truncated, c.rows, c.truncated)
			}
			if r.Rows == nil {
				t.Errorf("rows is nil; must marshal as []")
			}
		})
	}
}

// TestQueryCount checks COUNT(*) and its JSON.
func TestQueryCount(t *testing.T) {
	r := mustQuery(t, "select count ( * ) from LANDCOVER;", 0)
	if !reflect.DeepEqual(r.Rows, [][]any{{500}}) || !slices.Equal(r.Columns, []string{"count"}) {
		t.Errorf("got %v %v", r.Columns, r.Rows)
	}
	b, _ := json.Marshal(r)
	if want := `{"columns":["count"],"rows":[[500]],"row_count":1,"truncated":false,"bytes_scanned":4000}`; string(b) != want {
		t.Errorf("json %s, want %s", b, want)
	}
}

// TestQueryDeterministic checks that a query answers the same every time.
func TestQueryDeterministic(t *testing.T) {
	sql := "SELECT * FROM elevation_stats WHERE mean_m > 1000 ORDER BY tile DESC LIMIT 50"
	a, b := mustQuery(t, sql, 0), mustQuery(t, sql, 0)
	if !reflect.DeepEqual(a, b) {
		t.Errorf("answers differ")
	}
	ja, _ := json.Marshal(a)
	jb, _ := json.Marshal(b)
	if string(ja) != string(jb) {
		t.Errorf("json differs")
	}
}

// TestQueryErrors checks the messages of invalid requests and queries.
func TestQueryErrors(t *testing.T) {
	cases := []struct {
		sql     string
		maxRows int
		want    string
	}{
		{"", 0, "sql"},
		{"   \n ", 0, "sql"},
		{"SELECT * FROM landcover", -1, "max_rows"},
		{"SELECT * FROM landcover", 100001, "max_rows"},
		{"SELECT region FORM landcover", 0, `syntax error at position 15: expected FROM, found "FORM"`},
		{"SELECT * FROM foo", 0, `unknown table "foo" (tables: elevation_stats, landcover)`},
		{"SELECT x FROM landcover", 0, `unknown column "x" in table landcover`},
		{"SELECT region FROM landcover WHERE x = 1", 0, `unknown column "x" in table landcover`},
		{"SELECT region FROM landcover ORDER BY x", 0, `unknown column "x" in table landcover`},
		{"SELECT min_m FROM landcover", 0, `unknown column "min_m" in table landcover`},
		{"SELECT region FROM landcover WHERE region = 5", 0, "type mismatch: cannot compare region (TEXT) with 5 (number)"},
		{"SELECT region FROM landcover WHERE year = '2020'", 0, "type mismatch"},
		{"SELECT region FROM landcover WHERE region = 'r1", 0, "syntax error at position 45: unterminated string literal"},
		{"SELECT region FROM landcover WHERE region ! 'r1'", 0, "syntax error at position 43: unexpected character '!'"},
		{"SELECT region FROM landcover WHERE region == 'r1'", 0, "syntax error at position 44: expected column, string or number"},
		{"SELECT region FROM landcover WHERE region 'r1'", 0, "expected comparison operator"},
		{"SELECT region FROM landcover WHERE", 0, "found end of input"},
		{"SELECT region FROM landcover WHERE (year = 1", 0, `expected ), found end of input`},
		{"SELECT region FROM landcover LIMIT -1", 0, "expected a non-negative integer after LIMIT"},
		{"SELECT region FROM landcover LIMIT 1.5", 0, "expected a non-negative integer after LIMIT"},
		{"SELECT region FROM landcover LIMIT 99999999999999999999", 0, "expected a non-negative integer after LIMIT"},
		{"SELECT region FROM landcover LIMIT 1 extra", 0, `expected end of query, found "extra"`},
		{"SELECT region FROM landcover; SELECT 1", 0, "expected end of query"},
		{"SELECT FROM landcover", 0, "expected column name, * or COUNT(*)"},
		{"SELECT COUNT(*), region FROM landcover", 0, "COUNT(*) cannot be combined"},
		{"SELECT COUNT(region) FROM landcover", 0, `expected *, found "region"`},
		{"SELECT region, FROM landcover", 0, "expected column name"},
		{"SELECT * FROM", 0, "expected table name, found end of input"},
		{"SELECT * FROM landcover ORDER year", 0, `expected BY, found "year"`},
		{"UPDATE landcover SET x = 1", 0, `syntax error at position 1: expected SELECT, found "UPDATE"`},
		{"SELECT * FROM landcover WHERE area_km2 > 1e999", 0, "invalid number"},
		{"SELECT * FROM landcover WHERE area_km2 > -x", 0, "expected number after -"},
		{"SELECT * FROM landcover WHERE " + strings.Repeat("(", 200) + "year = 1" + strings.Repeat(")", 200), 0, "nested too deeply"},
	}
	for _, c := range cases {
		t.Run(c.sql, func(t *testing.T) {
			r, err := runQuery(QueryRequest{SQL: c.sql, MaxRows: c.maxRows})
			if err == nil {
				t.Fatalf("got %+v, want an error", r)
			}
			if err.Code != CodeInvalidParams || !strings.Contains(err.Message, c.want) {
				t.Errorf("got %d %q, want 40001 containing %q", err.Code, err.Message, c.want)
			}
		})
	}
}

// FuzzRunQuery checks that no query panics and every error is 40001.
func FuzzRunQuery(f *testing.F) {
	seeds := []string{
		"SELECT region, area_km2 FROM landcover WHERE class = 'forest' LIMIT 10",
		"select count(*) from landcover where year >= 2024 and (class='water' or class = 'urban');",
		"SELECT * FROM elevation_stats WHERE NOT mean_m < 1000.5 ORDER BY tile DESC LIMIT 3",
		"SELECT region FROM landcover WHERE region = 'it''s' -- comment",
		"SELECT x FORM y",
		"SELECT * FROM landcover WHERE area_km2 > -.5e2",
		"'",
		"SELECT ((",
	}
	for i, s := range seeds {
		f.Add(s, i*7-3)
	}
	f.Fuzz(func(t *testing.T, sql string, maxRows int) {
		r, err := runQuery(QueryRequest{SQL: sql, MaxRows: maxRows})
		if err != nil {
			if err.Code != CodeInvalidParams || err.Message == "" {
				t.Fatalf("error %d %q, want 40001 with a message", err.Code, err.Message)
			}
			return
		}
		limit := maxRows
		if limit == 0 {
			limit = queryDefaultMaxRows
		}
		if r.RowCount != len(r.Rows) || r.RowCount > limit || r.Rows == nil || len(r.Columns) == 0 {
			t.Fatalf("inconsistent answer: %d rows (%d listed, max %d), columns %v", r.RowCount, len(r.Rows), limit, r.Columns)
		}
		if _, err := json.Marshal(r); err != nil {
			t.Fatalf("marshal: %v", err)
		}
	})
}
