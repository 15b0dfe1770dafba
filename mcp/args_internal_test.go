package mcp

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// TestArgumentErrors covers each problem issue 12 measured: every bad call
// is refused with the argument's JSON path and the type expected.
func TestArgumentErrors(t *testing.T) {
	s := &Server{}
	s.schemas.aspect = s.aspectArgs()
	for _, tt := range []struct {
		name   string
		schema *argSchema
		args   string
		want   string // "" means accepted
	}{
		{"query accepted", queryArgsSchema, `{"sql":"SELECT 1","max_rows":5}`, ""},
		{"upper-case name", queryArgsSchema, `{"SQL":"SELECT 1"}`, `invalid SQL: is not an argument of this tool`},
		{"upper-case suggests", queryArgsSchema, `{"sql":"SELECT 1","Wait_Seconds":0}`, `did you mean "wait_seconds"?`},
		{"long s folds in encoding/json", queryArgsSchema, `{"ſql":"SELECT 1"}`, `invalid ſql: is not an argument`},
		{"duplicate key", queryArgsSchema, `{"sql":"SELECT 1","sql":"DROP TABLE x"}`, `invalid sql: is given twice`},
		{"fractional max_rows", queryArgsSchema, `{"sql":"SELECT 1","max_rows":2.5}`, `invalid max_rows: must be an integer, got 2.5`},
		{"string max_rows", queryArgsSchema, `{"sql":"SELECT 1","max_rows":"5"}`, `invalid max_rows: must be an integer, got a string "5"`},
		{"null argument", queryArgsSchema, `{"sql":null}`, `invalid sql: must be a string, got null`},
		{"missing sql", queryArgsSchema, `{}`, `invalid sql: is missing`},
		{"arguments array", queryArgsSchema, `["SELECT 1"]`, `must be a JSON object of named arguments, got an array`},
		{"submit without output", submitArgsSchema, `{"name":"n","code":"c"}`, `invalid output: is missing`},
		{"unknown nested field", submitArgsSchema, `{"name":"n","code":"c","output":{"format":"CSV","path":"/o","foo":1}}`, `invalid output.foo: is not a field of output`},
		{"nested case", submitArgsSchema, `{"name":"n","code":"c","output":{"Format":"CSV","path":"/o"}}`, `invalid output.Format`},
		{"nested missing", submitArgsSchema, `{"name":"n","code":"c","output":{"format":"CSV"}}`, `invalid output.path: is missing`},
		{"nested duplicate", submitArgsSchema, `{"name":"n","code":"c","output":{"format":"CSV","path":"/o","path":"/p"}}`, `invalid output.path: is given twice`},
		{"nested type", submitArgsSchema, `{"name":"n","code":"c","output":{"format":"CSV","path":7}}`, `invalid output.path: must be a string, got the number 7`},
		{"submit accepted", submitArgsSchema, `{"name":"n","code":"c","output":{"format":"CSV","path":"/o"}}`, ""},
		{"bad bbox element", s.schemas.aspect, `{"coverage_id":"dem_30m","bbox":[116,39,117,"40"]}`, `invalid bbox[3]: must be a number, got a string "40"`},
		{"bbox not array", s.schemas.aspect, `{"coverage_id":"dem_30m","bbox":"116,39,117,40"}`, `invalid bbox: must be an array, got a string`},
		{"list empty", listArgsSchema, ``, ""},
		{"list fractional limit", listArgsSchema, `{"limit":1.5}`, `invalid limit: must be an integer, got 1.5`},
		{"job_id boolean", jobArgsSchema, `{"job_id":true}`, `invalid job_id: must be a string, got true`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var v any
			switch tt.schema {
			case queryArgsSchema:
				v = &queryArgs{}
			case submitArgsSchema:
				v = &submitArgs{}
			case listArgsSchema:
				v = &listArgs{}
			case jobArgsSchema:
				v = &jobArgs{}
			default:
				v = &aspectArgs{}
			}
			err := tt.schema.decode([]byte(tt.args), v)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && err == nil:
				t.Fatalf("accepted; want %q", tt.want)
			case tt.want != "" && !strings.Contains(err.Error(), tt.want):
				t.Fatalf("error %q; want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestBindUsesRawArguments checks that a duplicate key sent on the wire
// reaches the check: mcp-go's map of arguments has already dropped it.
func TestBindUsesRawArguments(t *testing.T) {
	var req mcpgo.CallToolRequest
	if err := json.Unmarshal([]byte(`{"name":"run_big_query","arguments":{"sql":"SELECT 1","sql":"SELECT 2"}}`), &req.Params); err != nil {
		t.Fatal(err)
	}
	var a queryArgs
	if err := queryArgsSchema.bind(req, &a); err == nil || !strings.Contains(err.Error(), "given twice") {
		t.Fatalf("bind answered %v; want the duplicate refused", err)
	}
}

// TestSchemasFromTypes checks the derived schemas: required as the server
// requires, every object closed, annotations as the tools behave.
func TestSchemasFromTypes(t *testing.T) {
	s := &Server{}
	s.schemas.aspect = s.aspectArgs()
	type schema struct {
		Required             []string          `json:"required"`
		AdditionalProperties *bool             `json:"additionalProperties"`
		Properties           map[string]schema `json:"properties"`
		Items                *schema           `json:"items"`
		Type                 any               `json:"type"`
	}
	var closed func(path string, sc schema)
	closed = func(path string, sc schema) {
		if sc.Type == "object" && sc.Properties != nil && (sc.AdditionalProperties == nil || *sc.AdditionalProperties) {
			t.Errorf("%s: object is open", path)
		}
		if _, ok := sc.Type.(string); !ok && sc.Type != nil {
			t.Errorf("%s: type %v is not one type", path, sc.Type)
		}
		for n, p := range sc.Properties {
			closed(path+"."+n, p)
		}
		if sc.Items != nil {
			closed(path+"[]", *sc.Items)
		}
	}
	want := map[string]struct {
		required                                     []string
		readOnly, destructive, idempotent, openWorld bool
	}{
		"coverage_aspect_analysis": {[]string{"bbox", "coverage_id"}, true, false, false, true},
		"run_big_query":            {[]string{"sql"}, true, false, false, true},
		"execute_code_to_dag":      {[]string{"code", "language"}, true, false, false, true},
		"submit_batch_task":        {[]string{"code", "name", "output"}, false, false, false, true},
		"query_task_status":        {[]string{"task_id"}, true, false, false, true},
		"get_job":                  {[]string{"job_id"}, true, false, true, false},
		"list_jobs":                {nil, true, false, true, false},
		"cancel_job":               {[]string{"job_id"}, false, true, true, false},
	}
	tools := s.tools()
	if len(tools) != len(want) {
		t.Fatalf("%d tools; want %d", len(tools), len(want))
	}
	for _, tl := range tools {
		b, err := json.Marshal(tl.tool)
		if err != nil {
			t.Fatalf("%s: %v", tl.tool.Name, err)
		}
		var got struct {
			InputSchema  schema `json:"inputSchema"`
			OutputSchema schema `json:"outputSchema"`
			Annotations  struct {
				ReadOnly    *bool `json:"readOnlyHint"`
				Destructive *bool `json:"destructiveHint"`
				Idempotent  *bool `json:"idempotentHint"`
				OpenWorld   *bool `json:"openWorldHint"`
			} `json:"annotations"`
		}
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatal(err)
		}
		w := want[tl.tool.Name]
		req := slices.Sorted(slices.Values(got.InputSchema.Required))
		if !slices.Equal(req, w.required) {
			t.Errorf("%s: required %v; want %v", tl.tool.Name, req, w.required)
		}
		closed(tl.tool.Name+" input", got.InputSchema)
		closed(tl.tool.Name+" output", got.OutputSchema)
		a := got.Annotations
		if a.ReadOnly == nil || a.Destructive == nil || a.Idempotent == nil || a.OpenWorld == nil {
			t.Fatalf("%s: annotations not all said: %s", tl.tool.Name, b)
		}
		if *a.ReadOnly != w.readOnly || *a.Destructive != w.destructive || *a.Idempotent != w.idempotent || *a.OpenWorld != w.openWorld {
			t.Errorf("%s: annotations readOnly=%v destructive=%v idempotent=%v openWorld=%v; want %v %v %v %v", tl.tool.Name,
				*a.ReadOnly, *a.Destructive, *a.Idempotent, *a.OpenWorld, w.readOnly, w.destructive, w.idempotent, w.openWorld)
		}
	}
	if !strings.Contains(string(submitArgsSchema.raw), `"required":["format","path"]`) {
		t.Errorf("output's fields are not required: %s", submitArgsSchema.raw)
	}
}

// BenchmarkBind measures the argument check and decode of one call.
func BenchmarkBind(b *testing.B) {
	var req mcpgo.CallToolRequest
	if err := json.Unmarshal([]byte(`{"name":"submit_batch_task","arguments":{"name":"n","code":"print(1)","output":{"format":"CSV","path":"/o"},"wait_seconds":0}}`), &req.Params); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		var a submitArgs
		if err := submitArgsSchema.bind(req, &a); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkToolsList measures building the tool list a tools/list answers.
func BenchmarkToolsList(b *testing.B) {
	s := &Server{}
	s.schemas.aspect = s.aspectArgs()
	b.ReportAllocs()
	for b.Loop() {
		for _, tl := range s.tools() {
			if _, err := json.Marshal(tl.tool); err != nil {
				b.Fatal(err)
			}
		}
	}
}
