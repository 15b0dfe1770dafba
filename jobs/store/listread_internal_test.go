package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hibiken/asynq"

	"github.com/mcpjobs/mcpjobs/internal/redistest"
)

// TestViewsDecodeAsynqTasks: the pipelined reads of list_jobs build the
// same TaskInfo as asynq's Inspector, in every task state, so an asynq
// upgrade that changes how tasks are stored fails here.
func TestViewsDecodeAsynqTasks(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := t.Context()
	client := asynq.NewClientFromRedisClient(rdb)
	insp := asynq.NewInspectorFromRedisClient(rdb)
	enqueue := func(id string, opts ...asynq.Option) {
		t.Helper()
		task := asynq.NewTaskWithHeaders("test:decode", []byte(`{"n":1}`), map[string]string{"owner": "alice", "k": "v"})
		opts = append([]asynq.Option{asynq.TaskID(id), asynq.Queue("q"), asynq.MaxRetry(7), asynq.Timeout(time.Minute), asynq.Retention(time.Hour)}, opts...)
		if _, err := client.EnqueueContext(ctx, task, opts...); err != nil {
			t.Fatal(err)
		}
	}
	enqueue("scheduled", asynq.ProcessIn(time.Hour))
	enqueue("retry")
	enqueue("archived")
	enqueue("completed")
	srv := asynq.NewServerFromRedisClient(rdb, asynq.Config{
		Concurrency: 1, Queues: map[string]int{"q": 1}, TaskCheckInterval: 10 * time.Millisecond, LogLevel: asynq.FatalLevel,
		RetryDelayFunc: func(int, error, *asynq.Task) time.Duration { return time.Hour },
	})
	done := map[string]bool{}
	err := srv.Start(asynq.HandlerFunc(func(ctx context.Context, task *asynq.Task) error {
		id := task.ResultWriter().TaskID()
		switch id {
		case "retry":
			return errors.New("the platform is down")
		case "archived":
			return asynq.SkipRetry
		case "completed":
			_, err := task.ResultWriter().Write([]byte(`{"data":1}`))
			return err
		}
		return asynq.SkipRetry
	}))
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(done) < 3 && time.Now().Before(deadline) {
		for id, want := range map[string]asynq.TaskState{"retry": asynq.TaskStateRetry, "archived": asynq.TaskStateArchived, "completed": asynq.TaskStateCompleted} {
			if info, err := insp.GetTaskInfo("q", id); err == nil && info.State == want {
				done[id] = true
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.Shutdown()
	if len(done) < 3 {
		t.Fatalf("tasks did not reach their states: %v", done)
	}
	enqueue("pending")
	enqueue("deadline", asynq.Deadline(time.Now().Add(2*time.Hour)))
	for id, state := range map[string]asynq.TaskState{"pending": asynq.TaskStatePending, "deadline": asynq.TaskStatePending,
		"scheduled": asynq.TaskStateScheduled, "retry": asynq.TaskStateRetry, "archived": asynq.TaskStateArchived, "completed": asynq.TaskStateCompleted} {
		want, err := insp.GetTaskInfo("q", id)
		if err != nil || want.State != state {
			t.Fatalf("%s: %+v %v", id, want, err)
		}
		pipe := rdb.Pipeline()
		r := &taskReads{
			task:      pipe.HMGet(ctx, taskKey("q", id), "msg", "state", "result"),
			retry:     pipe.ZScore(ctx, "asynq:{q}:retry", id),
			scheduled: pipe.ZScore(ctx, "asynq:{q}:scheduled", id),
		}
		_, _ = pipe.Exec(ctx)
		got, err := r.taskInfo(id)
		if err != nil {
			t.Fatal(err)
		}
		if want.State == asynq.TaskStatePending {
			got.NextProcessAt = want.NextProcessAt // asynq answers "now" for a pending task
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n pipelined %+v\n inspector %+v", id, got, want)
		}
	}
}
