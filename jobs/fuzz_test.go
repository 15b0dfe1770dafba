package jobs_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"

	"github.com/mcpjobs/mcpjobs/jobs"
)

// FuzzPayloadDecode decodes arbitrary bytes into every payload type, as a
// worker decodes a task's payload, and validates the result: nothing
// panics, a rejected payload is a *FieldError, and a valid payload
// survives a JSON round trip unchanged.
func FuzzPayloadDecode(f *testing.F) {
	for _, seed := range []string{
		`{"coverage_id":"dem_30m","bbox":[116.0,39.8,116.1,39.9],"scale_m":30}`,
		`{"coverage_id":"dem_30m","bbox":[116.0,39.8,116.1,39.9]}`,
		`{"coverage_id":"dem 30m;DROP","bbox":[1,2,3]}`,
		`{"coverage_id":"dem_30m","bbox":[-180,-90,180,90],"scale_m":1e4}`,
		`{"coverage_id":"dem_30m","bbox":[0,0,1e308,1],"scale_m":-0}`,
		`{"sql":"SELECT region, area_km2 FROM landcover WHERE class = 'forest' LIMIT 10","max_rows":10}`,
		`{"sql":"   ","max_rows":-1}`,
		`{"sql":"SELECT 1","max_rows":100001}`,
		`{"code":"var dem = Image('dem_30m'); Export(dem.aspect(), 'out')","language":"javascript"}`,
		`{"code":"x","language":"cobol"}`,
		`{"name":"aspect-beijing-2026","code":"var a = 1","output":{"format":"GeoTIFF","path":"/data/out/a.tif"}}`,
		`{"name":"","code":"","output":null}`,
		`{"task_id":"bt-7f3a0c1d2e3f4a5b","submit_job_id":"submit-1","since":"2026-11-26T18:32:34.071854506Z"}`,
		`{"task_id":"bt-1","since":"2026-11-26T18:32:34+08:00"}`,
		`{"task_id":"bt 1; DROP"}`,
		`{"sql":"\u0000\ud800"}`,
		`[1,2,3]`,
		`null`,
		`"text"`,
		`{"bbox":{"a":1}}`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) > 64<<10 {
			return // sizes beyond a task payload's are not interesting
		}
		check[jobs.AspectPayload](t, data)
		check[jobs.QueryPayload](t, data)
		check[jobs.DAGPayload](t, data)
		check[jobs.BatchSubmitPayload](t, data)
		check[jobs.BatchTaskPayload](t, data)
	})
}

// check decodes data into a P, validates it and, when it is valid,
// re-encodes and decodes it again.
func check[P interface{ Validate() error }](t *testing.T, data []byte) {
	t.Helper()
	var p P
	if json.Unmarshal(data, &p) != nil {
		return
	}
	if err := p.Validate(); err != nil {
		var fe *jobs.FieldError
		if !errors.As(err, &fe) || !errors.Is(err, jobs.ErrInvalid) || fe.Field == "" {
			t.Fatalf("%T.Validate() = %v (%T); want a *FieldError naming a field", p, err, err)
		}
		return
	}
	b, err := json.Marshal(p)
	if err != nil {
		t.Fatalf("a valid %T does not encode: %v", p, err)
	}
	var q P
	if err := json.Unmarshal(b, &q); err != nil {
		t.Fatalf("a valid %T does not decode from its own JSON %s: %v", p, b, err)
	}
	if err := q.Validate(); err != nil {
		t.Fatalf("%T is valid, but not after a round trip through %s: %v", p, b, err)
	}
	if !equal(p, q) {
		t.Fatalf("%T changed in a round trip:\n before %#v\n after  %#v\n JSON   %s", p, p, q, b)
	}
}

// equal compares payloads.
func equal(a, b any) bool { return reflect.DeepEqual(a, b) }
