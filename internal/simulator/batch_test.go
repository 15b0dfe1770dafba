package simulator_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/simulator"
)

func submitBody(name string) map[string]any {
	return map[string]any{"name": name, "code": "var a = Image('dem_30m').aspect()",
		"output": map[string]string{"format": "GeoTIFF", "path": "/data/out/aspect.tif"}}
}

// submit submits a batch task and returns its ID.
func (e *env) submit(tok string, body any, key string) string {
	e.t.Helper()
	var hdr map[string]string
	if key != "" {
		hdr = map[string]string{"Idempotency-Key": key}
	}
	r := e.call("/api/batch/submit", tok, body, hdr)
	wantCode(e.t, r, 0)
	var d simulator.BatchSubmitResult
	if err := json.Unmarshal(r.Data, &d); err != nil {
		e.t.Fatal(err)
	}
	return d.TaskID
}

// status reads a task's status object through path (status or cancel).
func (e *env) status(tok, path, id string) simulator.BatchStatus {
	e.t.Helper()
	r := e.call(path, tok, map[string]string{"task_id": id}, nil)
	wantCode(e.t, r, 0)
	var st simulator.BatchStatus
	if err := json.Unmarshal(r.Data, &st); err != nil {
		e.t.Fatal(err)
	}
	return st
}

func TestBatchSubmitValidation(t *testing.T) {
	e := setup(t, simulator.Config{})
	tok := e.token()
	with := func(f func(m map[string]any)) map[string]any {
		m := submitBody("ok")
		f(m)
		return m
	}
	tests := []struct {
		name    string
		body    any
		key     string
		wantMsg string
	}{
		{"empty name", with(func(m map[string]any) { m["name"] = "" }), "", "name"},
		{"long name", with(func(m map[string]any) { m["name"] = strings.Repeat("n", 201) }), "", "name"},
		{"empty code", with(func(m map[string]any) { m["code"] = "  " }), "", "code"},
		{"bad format", with(func(m map[string]any) { m["output"] = map[string]string{"format": "PNG", "path": "/x"} }), "", "output.format"},
		{"relative path", with(func(m map[string]any) { m["output"] = map[string]string{"format": "CSV", "path": "x.csv"} }), "", "output.path"},
		{"no output", with(func(m map[string]any) { delete(m, "output") }), "", "output.format"},
		{"long key", submitBody("ok"), strings.Repeat("k", 129), "Idempotency-Key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := e.call("/api/batch/submit", tok, tt.body, map[string]string{"Idempotency-Key": tt.key})
			wantCode(t, r, 40001)
			if !strings.Contains(r.Message, tt.wantMsg) {
				t.Errorf("message = %q, want it to mention %q", r.Message, tt.wantMsg)
			}
		})
	}
	t.Run("limits accepted", func(t *testing.T) {
		body := submitBody(strings.Repeat("n", 200))
		for _, f := range []string{"GeoTIFF", "COG", "GeoJSON", "CSV", "Parquet"} {
			body["output"] = map[string]string{"format": f, "path": "/out"}
			e.submit(tok, body, strings.Repeat("k", 128-len(f))+f)
		}
	})
	if s := e.stats(); s.BatchSubmissions != 5 {
		t.Errorf("batch_submissions = %d, want 5", s.BatchSubmissions)
	}
}

func TestBatchIdempotency(t *testing.T) {
	e := setup(t, simulator.Config{})
	tok := e.token()

	id := e.submit(tok, submitBody("a"), "key-1")
	if len(id) != 19 || !strings.HasPrefix(id, "bt-") {
		t.Errorf("task_id = %q, want bt- and 16 hex digits", id)
	}
	// The same body, with its fields in another order and spacing.
	same := `{"output": {"path": "/data/out/aspect.tif", "format": "GeoTIFF"},  "code": "var a = Image('dem_30m').aspect()", "name": "a"}`
	if got := e.submit(tok, same, "key-1"); got != id {
		t.Errorf("replay answered %q, want %q", got, id)
	}
	r := e.call("/api/batch/submit", tok, submitBody("b"), map[string]string{"Idempotency-Key": "key-1"})
	wantCode(t, r, 40009)

	if got := e.submit(tok, submitBody("a"), "key-2"); got == id {
		t.Error("another key answered the same task")
	}
	if got := e.submit(tok, submitBody("a"), ""); got == id {
		t.Error("no key answered the same task")
	}

	// Keys are kept 24 hours.
	e.clock.Advance(23 * time.Hour)
	tok = e.token() // the first one has expired by now
	if got := e.submit(tok, submitBody("a"), "key-1"); got != id {
		t.Errorf("replay after 23h answered %q, want %q", got, id)
	}
	e.clock.Advance(time.Hour)
	tok = e.token()
	if got := e.submit(tok, submitBody("b"), "key-1"); got == id {
		t.Error("key still known after 24h")
	}

	s := e.stats()
	if s.BatchSubmissions != 4 || s.IdempotentReplays != 2 {
		t.Errorf("stats: %d submissions, %d replays; want 4 and 2", s.BatchSubmissions, s.IdempotentReplays)
	}
}

func TestBatchLifecycle(t *testing.T) {
	tests := []struct {
		name      string
		task      string
		at        time.Duration // since submission; BatchDuration is 100s
		state     string
		progress  int
		message   string
		updatedAt time.Duration
	}{
		{"queued", "ok", 0, "QUEUED", 0, "queued", 0},
		{"still queued", "ok", 9 * time.Second, "QUEUED", 0, "queued", 0},
		{"running starts", "ok", 10 * time.Second, "RUNNING", 0, "tiling", 10 * time.Second},
		{"tiling", "ok", 28 * time.Second, "RUNNING", 20, "tiling", 28 * time.Second},
		{"computing", "ok", 55 * time.Second, "RUNNING", 50, "computing", 55 * time.Second},
		{"writing", "ok", 99 * time.Second, "RUNNING", 98, "writing", 98200 * time.Millisecond},
		{"last step", "ok", 99999 * time.Millisecond, "RUNNING", 99, "writing", 99100 * time.Millisecond},
		{"succeeded", "ok", 100 * time.Second, "SUCCEEDED", 100, "done", 100 * time.Second},
		{"later", "ok", time.Hour, "SUCCEEDED", 100, "done", 100 * time.Second},
		{"failing task running", "will-fail", 50 * time.Second, "RUNNING", 44, "computing", 49600 * time.Millisecond},
		{"failing task ends", "will-FAIL", 100 * time.Second, "FAILED", 99, "failed", 100 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, simulator.Config{BatchDuration: 100 * time.Second, TokenTTL: 24 * time.Hour})
			tok := e.token()
			created := e.clock.Now()
			id := e.submit(tok, submitBody(tt.task), "")
			e.clock.Advance(tt.at)
			st := e.status(tok, "/api/batch/status", id)
			if st.TaskID != id || st.Name != tt.task || st.State != tt.state || st.Progress != tt.progress || st.Message != tt.message {
				t.Errorf("status = %+v, want %s %d%% %q", st, tt.state, tt.progress, tt.message)
			}
			if want := created.Format(time.RFC3339); st.CreatedAt != want {
				t.Errorf("created_at = %q, want %q", st.CreatedAt, want)
			}
			if want := created.Add(tt.updatedAt).Truncate(time.Second).Format(time.RFC3339); st.UpdatedAt != want {
				t.Errorf("updated_at = %q, want %q", st.UpdatedAt, want)
			}
			switch tt.state {
			case "SUCCEEDED":
				if st.Result == nil || st.Result.OutputURI != "sim:///data/out/aspect.tif" || st.Error != nil {
					t.Errorf("result %+v, error %v", st.Result, st.Error)
				}
			case "FAILED":
				if st.Result != nil || st.Error == nil || *st.Error != "simulated failure" {
					t.Errorf("result %+v, error %v", st.Result, st.Error)
				}
			default:
				if st.Result != nil || st.Error != nil {
					t.Errorf("result %+v, error %v; want both null", st.Result, st.Error)
				}
			}
		})
	}
}

// TestBatchStatusJSON checks the exact field set of the status object.
func TestBatchStatusJSON(t *testing.T) {
	e := setup(t, simulator.Config{})
	tok := e.token()
	id := e.submit(tok, submitBody("x"), "")
	r := e.call("/api/batch/status", tok, map[string]string{"task_id": id}, nil)
	var m map[string]any
	if err := json.Unmarshal(r.Data, &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"task_id", "name", "state", "progress", "message", "created_at", "updated_at", "result", "error"} {
		if _, ok := m[k]; !ok {
			t.Errorf("field %q missing in %s", k, r.Data)
		}
	}
	if len(m) != 9 || m["result"] != nil || m["error"] != nil {
		t.Errorf("status object %s: want exactly the 9 contract fields, result and error null", r.Data)
	}
}

func TestBatchCancel(t *testing.T) {
	e := setup(t, simulator.Config{BatchDuration: 100 * time.Second, TokenTTL: 24 * time.Hour})
	tok := e.token()
	running := e.submit(tok, submitBody("r"), "")
	queued := e.submit(tok, submitBody("q"), "")
	e.clock.Advance(55 * time.Second)
	queuedLater := e.submit(tok, submitBody("q2"), "")

	st := e.status(tok, "/api/batch/cancel", running)
	if st.State != "CANCELLED" || st.Progress != 50 || st.Result != nil || st.Error != nil {
		t.Errorf("cancel answered %+v, want CANCELLED at 50%%", st)
	}
	st = e.status(tok, "/api/batch/cancel", queuedLater)
	if st.State != "CANCELLED" || st.Progress != 0 {
		t.Errorf("cancel of a queued task answered %+v", st)
	}

	e.clock.Advance(time.Hour)
	st = e.status(tok, "/api/batch/status", running)
	if st.State != "CANCELLED" || st.Progress != 50 {
		t.Errorf("cancelled task later: %+v, want CANCELLED frozen at 50%%", st)
	}
	if want := e.clock.Now().Add(-time.Hour).Format(time.RFC3339); st.UpdatedAt != want {
		t.Errorf("updated_at = %s, want the cancellation time %s", st.UpdatedAt, want)
	}
	if again := e.status(tok, "/api/batch/cancel", running); again != st {
		t.Errorf("second cancel changed the task: %+v, was %+v", again, st)
	}
	// A final task stays as it is.
	st = e.status(tok, "/api/batch/cancel", queued)
	if st.State != "SUCCEEDED" || st.Progress != 100 || st.Result == nil {
		t.Errorf("cancel of a finished task answered %+v, want it SUCCEEDED", st)
	}
}

func TestBatchUnknownTask(t *testing.T) {
	e := setup(t, simulator.Config{})
	tok := e.token()
	for _, path := range []string{"/api/batch/status", "/api/batch/cancel"} {
		t.Run(path, func(t *testing.T) {
			wantCode(t, e.call(path, tok, map[string]string{"task_id": "bt-ffffffffffffffff"}, nil), 40004)
			wantCode(t, e.call(path, tok, map[string]string{}, nil), 40001)
		})
	}
}

// FuzzBatchSubmit feeds arbitrary bodies and keys to the submit endpoint:
// every answer is an HTTP 200 envelope with a known code.
func FuzzBatchSubmit(f *testing.F) {
	b, _ := json.Marshal(submitBody("seed"))
	f.Add(string(b), "k")
	f.Add(`{"name": "x", "code": "y", "output": {"format": "CSV", "path": "/a"}}`, "")
	f.Add(`{"name": 1}`, "k")
	f.Add(`[]`, "")
	f.Add(`{"name": "\u0000", "code": "c", "output": {"format": "COG", "path": "/"}} x`, strings.Repeat("é", 100))

	sim, err := simulator.New(simulator.Config{})
	if err != nil {
		f.Fatal(err)
	}
	rec := httptest.NewRecorder()
	sim.ServeHTTP(rec, httptest.NewRequest(http.MethodPost, "/auth/token",
		strings.NewReader(`{"username": "svc-mcp", "password": "sim-password"}`)))
	var auth struct{ Data struct{ Token string } }
	if err := json.Unmarshal(rec.Body.Bytes(), &auth); err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, body, key string) {
		req := httptest.NewRequest(http.MethodPost, "/api/batch/submit", strings.NewReader(body))
		req.Header.Set("Authorization", auth.Data.Token)
		req.Header.Set("Idempotency-Key", key)
		rec := httptest.NewRecorder()
		sim.ServeHTTP(rec, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("HTTP %d", rec.Code)
		}
		var env struct {
			Code int
			Data *simulator.BatchSubmitResult
		}
		if err := json.Unmarshal(rec.Body.Bytes(), &env); err != nil {
			t.Fatalf("answer %q: %v", rec.Body, err)
		}
		switch env.Code {
		case 0:
			if env.Data == nil || !strings.HasPrefix(env.Data.TaskID, "bt-") {
				t.Fatalf("success without a task_id: %s", rec.Body)
			}
		case 40001, 40009:
		default:
			t.Fatalf("unexpected code %d: %s", env.Code, rec.Body)
		}
	})
}
