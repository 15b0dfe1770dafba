package web_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/web"
)

const (
	user = "operator"
	pass = "correct horse battery staple"
)

// site is one web server on its own Redis.
type site struct {
	redis *redistest.Server
	rdb   *redis.Client
	url   string
}

// setup starts a Redis and the site on it, with cfg's Redis set; both stop
// when the test ends.
func setup(t *testing.T, cfg web.Config) *site {
	t.Helper()
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	cfg.Redis = rdb
	s, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return &site{redis: srv, rdb: rdb, url: ts.URL}
}

// get sends a GET, with basic auth when username is set, and returns the
// status and body.
func get(t *testing.T, url, username, password string) (int, string) {
	t.Helper()
	return do(t, http.MethodGet, url, username, password)
}

func do(t *testing.T, method, url, username, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if username != "" {
		req.SetBasicAuth(username, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// enqueue puts a task with a raw payload into a queue.
func enqueue(t *testing.T, s *site, queue string, payload []byte) *asynq.TaskInfo {
	t.Helper()
	c := asynq.NewClientFromRedisClient(s.rdb)
	info, err := c.EnqueueContext(t.Context(), asynq.NewTask(jobs.TypeAspect, payload), asynq.Queue(queue))
	if err != nil {
		t.Fatal(err)
	}
	return info
}

func TestLogin(t *testing.T) {
	s := setup(t, web.Config{Username: user, Password: pass})
	tests := []struct {
		name, path, user, pass string
		want                   int
	}{
		{"no login", "/monitoring/", "", "", http.StatusUnauthorized},
		{"wrong password", "/monitoring/", user, "wrong", http.StatusUnauthorized},
		{"password prefix", "/monitoring/", user, pass[:5], http.StatusUnauthorized},
		{"wrong user", "/monitoring/", "root", pass, http.StatusUnauthorized},
		{"api without login", "/monitoring/api/queues", "", "", http.StatusUnauthorized},
		{"right login", "/monitoring/", user, pass, http.StatusOK},
		{"api with login", "/monitoring/api/queues", user, pass, http.StatusOK},
		{"spa route with login", "/monitoring/queues/interactive", user, pass, http.StatusOK},
		{"healthz without login", "/healthz", "", "", http.StatusOK},
		{"readyz without login", "/readyz", "", "", http.StatusOK},
		{"metrics without login", "/metrics", "", "", http.StatusOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := get(t, s.url+tt.path, tt.user, tt.pass)
			if code != tt.want {
				t.Fatalf("GET %s: %d, want %d: %s", tt.path, code, tt.want, body)
			}
			if code == http.StatusUnauthorized && strings.Contains(body, "Asynq") {
				t.Errorf("a refused request got the dashboard: %s", body)
			}
		})
	}

	t.Run("challenge", func(t *testing.T) {
		resp, err := http.Get(s.url + "/monitoring/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if h := resp.Header.Get("WWW-Authenticate"); !strings.HasPrefix(h, "Basic ") {
			t.Errorf("WWW-Authenticate = %q, want a Basic challenge", h)
		}
	})

	t.Run("dashboard and API", func(t *testing.T) {
		enqueue(t, s, jobs.QueueInteractive, []byte(`{"coverage_id":"dem_30m"}`))
		_, page := get(t, s.url+"/monitoring/", user, pass)
		if !strings.Contains(page, "Asynq - Monitoring") || !strings.Contains(page, `href="/monitoring/favicon.ico"`) {
			t.Errorf("/monitoring/ is not asynqmon rooted at /monitoring:\n%.500s", page)
		}
		code, body := get(t, s.url+"/monitoring/api/queues", user, pass)
		var v struct {
			Queues []struct {
				Queue   string `json:"queue"`
				Pending int    `json:"pending"`
			} `json:"queues"`
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil || code != http.StatusOK {
			t.Fatalf("GET /monitoring/api/queues: %d %v: %s", code, err, body)
		}
		if len(v.Queues) != 1 || v.Queues[0].Queue != jobs.QueueInteractive || v.Queues[0].Pending != 1 {
			t.Errorf("queues = %+v, want interactive with 1 pending", v.Queues)
		}
	})
}

func TestNoLoginConfigured(t *testing.T) {
	s := setup(t, web.Config{})
	if code, body := get(t, s.url+"/monitoring/api/queues", "", ""); code != http.StatusOK {
		t.Errorf("without Username/Password the dashboard is open: got %d %s", code, body)
	}
	if code, _ := get(t, s.url+"/", "", ""); code != http.StatusOK {
		t.Errorf("GET / (redirected to the dashboard): %d", code)
	}
}

func TestReadOnly(t *testing.T) {
	for _, readOnly := range []bool{false, true} {
		s := setup(t, web.Config{Username: user, Password: pass, ReadOnly: readOnly})
		enqueue(t, s, jobs.QueueInteractive, []byte(`{}`))
		code, body := do(t, http.MethodDelete, s.url+"/monitoring/api/queues/interactive/pending_tasks:delete_all", user, pass)
		want := http.StatusOK
		if readOnly {
			want = http.StatusMethodNotAllowed
		}
		if code != want {
			t.Errorf("ReadOnly %v: delete_all answered %d, want %d: %s", readOnly, code, want, body)
		}
	}
}

func TestHealthAndReadiness(t *testing.T) {
	s := setup(t, web.Config{Username: user, Password: pass, ReadyTimeout: 500 * time.Millisecond})
	check := func(path string, want int) {
		t.Helper()
		if code, body := get(t, s.url+path, "", ""); code != want {
			t.Errorf("GET %s: %d, want %d: %s", path, code, want, body)
		}
	}
	check("/healthz", http.StatusOK)
	check("/readyz", http.StatusOK)
	if _, body := get(t, s.url+"/metrics", "", ""); !strings.Contains(body, "mcpjobs_web_redis_up 1") {
		t.Errorf("/metrics lacks mcpjobs_web_redis_up 1")
	}

	s.redis.Stop(t)
	start := time.Now()
	check("/readyz", http.StatusServiceUnavailable)
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("/readyz took %v with Redis down", d)
	}
	check("/healthz", http.StatusOK)
	code, body := get(t, s.url+"/metrics", "", "")
	if code != http.StatusOK || !strings.Contains(body, "mcpjobs_web_redis_up 0") {
		t.Errorf("/metrics with Redis down: %d, want 200 with mcpjobs_web_redis_up 0:\n%s", code, body)
	}

	s.redis.Restart(t)
	check("/readyz", http.StatusOK)
}

func TestMetrics(t *testing.T) {
	s := setup(t, web.Config{Username: user, Password: pass})
	for range 3 {
		enqueue(t, s, jobs.QueueInteractive, []byte(`{}`))
	}
	enqueue(t, s, jobs.QueueBatch, []byte(`{}`))
	code, body := get(t, s.url+"/metrics", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, want := range []string{
		`asynq_queue_size{queue="interactive"} 3`,
		`asynq_queue_size{queue="batch"} 1`,
		`asynq_tasks_enqueued_total{queue="interactive",state="pending"} 3`,
		`asynq_tasks_enqueued_total{queue="interactive",state="archived"} 0`,
		`asynq_queue_latency_seconds{queue="interactive"}`,
		`asynq_tasks_processed_total{queue="interactive"} 0`,
		`asynq_tasks_failed_total{queue="interactive"} 0`,
		"mcpjobs_web_redis_up 1",
		"go_goroutines",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// secretPayload carries secrets in every way the formatter knows, and
// fields that must stay visible.
const secretPayload = `{
	"coverage_id": "dem_30m",
	"bbox": [116.0, 39.8, 116.1, 39.9],
	"auth_token": "s3cret-auth-token",
	"password": "p",
	"nested": {"token": "t", "scale_m": 30, "deeper": [{"apiKey": "k3y-in-array"}]},
	"headers": {"Authorization": "Bearer hdr-bearer-value"},
	"code": "curl -H 'Authorization: Basic dXNlcjpwYXNz' https://svc:url-password@example.org/x?access_token=qs-token&page=2"
}`

var secrets = []string{"s3cret-auth-token", "k3y-in-array", "hdr-bearer-value", "dXNlcjpwYXNz", "url-password", "qs-token"}

// checkRedacted checks one formatted payload or result.
func checkRedacted(t *testing.T, formatted string) {
	t.Helper()
	var v struct {
		CoverageID string    `json:"coverage_id"`
		BBox       []float64 `json:"bbox"`
		AuthToken  string    `json:"auth_token"`
		Password   string    `json:"password"`
		Nested     struct {
			Token  string            `json:"token"`
			ScaleM int               `json:"scale_m"`
			Deeper []json.RawMessage `json:"deeper"`
		} `json:"nested"`
		Headers map[string]string `json:"headers"`
		Code    string            `json:"code"`
	}
	if err := json.Unmarshal([]byte(formatted), &v); err != nil {
		t.Fatalf("formatted payload is not JSON: %v\n%s", err, formatted)
	}
	if v.CoverageID != "dem_30m" || len(v.BBox) != 4 || v.Nested.ScaleM != 30 || !strings.Contains(v.Code, "page=2") {
		t.Errorf("non-secret fields lost: %s", formatted)
	}
	for name, got := range map[string]string{"auth_token": v.AuthToken, "password": v.Password, "nested.token": v.Nested.Token, "headers.Authorization": v.Headers["Authorization"]} {
		if got != web.Redacted {
			t.Errorf("%s = %q, want %q", name, got, web.Redacted)
		}
	}
	if want := `curl -H 'Authorization: [REDACTED]' https://svc:[REDACTED]@example.org/x?access_token=[REDACTED]&page=2`; v.Code != want {
		t.Errorf("code =\n %s\nwant\n %s", v.Code, want)
	}
}

func TestDashboardRedactsSecrets(t *testing.T) {
	s := setup(t, web.Config{Username: user, Password: pass})

	t.Run("pending payload", func(t *testing.T) {
		info := enqueue(t, s, jobs.QueueInteractive, []byte(secretPayload))
		for _, path := range []string{
			"/monitoring/api/queues/interactive/pending_tasks",
			"/monitoring/api/queues/interactive/tasks/" + info.ID,
		} {
			code, body := get(t, s.url+path, user, pass)
			if code != http.StatusOK {
				t.Fatalf("GET %s: %d %s", path, code, body)
			}
			for _, secret := range secrets {
				if strings.Contains(body, secret) {
					t.Errorf("GET %s shows the secret %q:\n%s", path, secret, body)
				}
			}
			var one struct {
				Payload string `json:"payload"`
				Tasks   []struct {
					Payload string `json:"payload"`
				} `json:"tasks"`
			}
			if err := json.Unmarshal([]byte(body), &one); err != nil {
				t.Fatal(err)
			}
			if len(one.Tasks) == 1 {
				one.Payload = one.Tasks[0].Payload
			}
			checkRedacted(t, one.Payload)
		}
	})

	t.Run("completed result", func(t *testing.T) {
		srv := asynq.NewServerFromRedisClient(s.rdb, asynq.Config{
			Queues:      map[string]int{jobs.QueueBatch: 1},
			Concurrency: 1,
			LogLevel:    asynq.FatalLevel,
		})
		mux := asynq.NewServeMux()
		mux.HandleFunc(jobs.TypeAspect, func(ctx context.Context, task *asynq.Task) error {
			_, err := task.ResultWriter().Write([]byte(secretPayload))
			return err
		})
		if err := srv.Start(mux); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(srv.Shutdown)
		c := asynq.NewClientFromRedisClient(s.rdb)
		info, err := c.EnqueueContext(t.Context(), asynq.NewTask(jobs.TypeAspect, []byte(secretPayload)),
			asynq.Queue(jobs.QueueBatch), asynq.Retention(time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		insp := asynq.NewInspectorFromRedisClient(s.rdb)
		deadline := time.Now().Add(10 * time.Second)
		for {
			ti, err := insp.GetTaskInfo(jobs.QueueBatch, info.ID)
			if err == nil && ti.State == asynq.TaskStateCompleted {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("task did not complete: %v %+v", err, ti)
			}
			time.Sleep(20 * time.Millisecond)
		}
		code, body := get(t, s.url+"/monitoring/api/queues/batch/completed_tasks", user, pass)
		if code != http.StatusOK {
			t.Fatalf("completed_tasks: %d %s", code, body)
		}
		for _, secret := range secrets {
			if strings.Contains(body, secret) {
				t.Errorf("completed_tasks shows the secret %q:\n%s", secret, body)
			}
		}
		var v struct {
			Tasks []struct {
				Payload string `json:"payload"`
				Result  string `json:"result"`
			} `json:"tasks"`
		}
		if err := json.Unmarshal([]byte(body), &v); err != nil || len(v.Tasks) != 1 {
			t.Fatalf("completed_tasks: %v: %s", err, body)
		}
		checkRedacted(t, v.Tasks[0].Payload)
		checkRedacted(t, v.Tasks[0].Result)
	})
}

func TestNewErrors(t *testing.T) {
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	defer rdb.Close()
	tests := []struct {
		name string
		cfg  web.Config
		want error
	}{
		{"no redis", web.Config{}, web.ErrNoRedis},
		{"username only", web.Config{Redis: rdb, Username: "u"}, web.ErrHalfCredentials},
		{"password only", web.Config{Redis: rdb, Password: "p"}, web.ErrHalfCredentials},
		{"prometheus without scheme", web.Config{Redis: rdb, PrometheusAddr: "prometheus:9090"}, web.ErrBadPrometheusURL},
		{"prometheus ftp", web.Config{Redis: rdb, PrometheusAddr: "ftp://prometheus"}, web.ErrBadPrometheusURL},
		{"ok", web.Config{Redis: rdb, Username: "u", Password: "p", PrometheusAddr: "http://prometheus:9090/"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := web.New(tt.cfg)
			if !errors.Is(err, tt.want) {
				t.Errorf("New: %v, want %v", err, tt.want)
			}
		})
	}
}

func TestRedact(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"empty", "", ""},
		{"blank", " \n", ""},
		{"not JSON", "password=hunter2", "(16 bytes, not JSON: hidden)"},
		{"binary", "\x00\x01\x02", "(3 bytes, not JSON: hidden)"},
		{"trailing garbage", `{"a":1} x`, "(9 bytes, not JSON: hidden)"},
		{"plain", `{"b": 1, "a": [true, null, 1.50, "x"]}`, `{"b":1,"a":[true,null,1.50,"x"]}`},
		{"html kept readable", `{"sql":"SELECT a FROM t WHERE b < 3 & c > 2"}`, `{"sql":"SELECT a FROM t WHERE b < 3 & c > 2"}`},
		{"secret keys", `{"password":"p","Auth_Token":"t","X-Api-Key":1,"client_secret":{"a":[1]},"accessToken":["x"],"auth":"a","pwd":"w"}`,
			`{"password":"[REDACTED]","Auth_Token":"[REDACTED]","X-Api-Key":"[REDACTED]","client_secret":"[REDACTED]","accessToken":"[REDACTED]","auth":"[REDACTED]","pwd":"[REDACTED]"}`},
		{"null secret stays null", `{"auth_token":null}`, `{"auth_token":null}`},
		{"not secret", `{"token_prefix":"Bearer ","task_id":"b-1","idempotency_key":"k","author":"ann"}`, `{"token_prefix":"Bearer ","task_id":"b-1","idempotency_key":"k","author":"ann"}`},
		{"nested", `[{"a":{"token":"t","b":2}}]`, `[{"a":{"token":"[REDACTED]","b":2}}]`},
		{"duplicate keys", `{"password":"a","password":"b"}`, `{"password":"[REDACTED]","password":"[REDACTED]"}`},
		{"authorization header text", `"Authorization: Bearer abc.def"`, `"Authorization: [REDACTED]"`},
		{"bearer in text", `"use Bearer eyJhbGciOi.x-y_z= now"`, `"use Bearer [REDACTED] now"`},
		{"key=value in text", `"a=1&password=hunter2&b=2; api_key: 'zz' secret=\"q q\""`, `"a=1&password=[REDACTED]&b=2; api_key: [REDACTED] secret=[REDACTED]"`},
		{"json in a string", `"{\"token\":\"tok\",\"n\":1}"`, `"{\"token\":[REDACTED],\"n\":1}"`},
		{"url password", `"redis://:pw@redis:6379/0 and https://u:p%40ss@h/x"`, `"redis://:[REDACTED]@redis:6379/0 and https://u:[REDACTED]@h/x"`},
		{"url without password", `"https://h.example/a:b@c"`, `"https://h.example/a:b@c"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := web.Redact([]byte(tt.in)); got != tt.want {
				t.Errorf("Redact(%s)\n got %s\nwant %s", tt.in, got, tt.want)
			}
		})
	}
}

func ExampleRedact() {
	fmt.Println(web.Redact([]byte(`{"sql": "SELECT 1", "auth_token": "s3cret", "headers": {"Authorization": "Bearer abc"}}`)))
	// Output: {"sql":"SELECT 1","auth_token":"[REDACTED]","headers":{"Authorization":"[REDACTED]"}}
}
