package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
)

// MemoryConfig sets up the memory scenario.
type MemoryConfig struct {
	// Jobs is the number of pending jobs queued on each side.
	// Default: 10000.
	Jobs int
	// Redis gives each side its database. Required. INFO's used_memory is
	// the whole server's, so nothing else should write to it meanwhile.
	Redis Redis
}

func (c MemoryConfig) withDefaults() MemoryConfig {
	if c.Jobs <= 0 {
		c.Jobs = 10000
	}
	return c
}

// sampledTasks is how many task hashes MEMORY USAGE measures on each side.
const sampledTasks = 100

// MemoryRun is one side's figures, in bytes.
type MemoryRun struct {
	Jobs int `json:"jobs"`
	// UsedMemoryDelta is INFO memory's used_memory after queueing minus
	// before, leaving out the connections' buffers and the append-only
	// file's write buffer (mem_clients_normal, mem_aof_buffer), which come
	// and go with the traffic; PerJob divides it by Jobs.
	UsedMemoryDelta int64   `json:"used_memory_delta_bytes"`
	PerJob          float64 `json:"bytes_per_job"`
	// RawDelta is the used_memory delta with those buffers.
	RawDelta int64 `json:"raw_used_memory_delta_bytes"`
	// TaskHash is the mean MEMORY USAGE of a job's task hash (asynq's
	// asynq:{queue}:t:<id>: the message with payload and headers, state,
	// and the rest), over a sample of jobs.
	TaskHash float64 `json:"task_hash_bytes"`
	// PendingList is the pending list's MEMORY USAGE over Jobs.
	PendingList float64 `json:"pending_list_bytes_per_job"`
	// OwnerIndex is the owner's job index's MEMORY USAGE over Jobs
	// (mcpjobs only: mcpjobs:owner:<name>:jobs).
	OwnerIndex float64 `json:"owner_index_bytes_per_job"`
	// KeysPerJob is TaskHash + PendingList + OwnerIndex.
	KeysPerJob float64 `json:"key_bytes_per_job"`
}

// MemoryReport compares the Redis memory a pending mcpjobs job takes with a
// bare asynq task of the same payload.
type MemoryReport struct {
	Scenario string `json:"scenario"`
	Jobs     int    `json:"jobs"`
	Payload  string `json:"payload"`
	// Ratio is mcpjobs' bytes per job over the bare task's (INFO delta);
	// KeysRatio the same from MEMORY USAGE of the keys.
	Ratio     float64   `json:"ratio_mcpjobs_over_bare"`
	KeysRatio float64   `json:"keys_ratio_mcpjobs_over_bare"`
	MCPJobs   MemoryRun `json:"mcpjobs"`
	Bare      MemoryRun `json:"bare_asynq"`
}

// aspectPayload is a typical coverage_aspect_analysis request.
var aspectPayload = jobs.AspectPayload{CoverageID: "dem_30m", BBox: []float64{116.0, 39.8, 116.1, 39.9}, ScaleM: 30}

// Memory queues Jobs pending aspect jobs on each side, with no worker:
// through store.Client.Enqueue, then as bare asynq tasks of the same payload
// and options.
func Memory(ctx context.Context, cfg MemoryConfig) (*MemoryReport, error) {
	cfg = cfg.withDefaults()
	body, err := json.Marshal(aspectPayload)
	if err != nil {
		return nil, err
	}
	rep := &MemoryReport{Scenario: "memory", Jobs: cfg.Jobs, Payload: string(body)}
	if rep.MCPJobs, err = memorySide(ctx, cfg, SideMCPJobs, body); err != nil {
		return nil, fmt.Errorf("mcpjobs side: %w", err)
	}
	if rep.Bare, err = memorySide(ctx, cfg, SideBaseline, body); err != nil {
		return nil, fmt.Errorf("baseline side: %w", err)
	}
	rep.Ratio = ratio(rep.MCPJobs.PerJob, rep.Bare.PerJob)
	rep.KeysRatio = ratio(rep.MCPJobs.KeysPerJob, rep.Bare.KeysPerJob)
	return rep, ctx.Err()
}

func memorySide(ctx context.Context, cfg MemoryConfig, side Side, body []byte) (MemoryRun, error) {
	run := MemoryRun{Jobs: cfg.Jobs}
	db, err := cfg.Redis.Open(ctx, side)
	if err != nil {
		return run, err
	}
	defer db.Close()
	rdb := db.Client
	if err := rdb.Do(ctx, "MEMORY", "USAGE", "mcpjobs:bench:none").Err(); err != nil && err != redis.Nil {
		return run, fmt.Errorf("MEMORY USAGE: %w (the memory scenario needs a real Redis)", err)
	}
	before, err := usedMemory(ctx, rdb)
	if err != nil {
		return run, err
	}
	var enqueue func(context.Context) error
	if side == SideMCPJobs {
		jc := store.NewClient(rdb, store.Options{Logger: discard})
		defer jc.Close()
		enqueue = func(ctx context.Context) error {
			_, err := jc.Enqueue(ctx, owner, aspectPayload)
			return err
		}
	} else {
		client := asynq.NewClientFromRedisClient(rdb)
		defer client.Close()
		opts := bareOptions(jobs.TypeAspect)
		enqueue = func(ctx context.Context) error {
			_, err := client.EnqueueContext(ctx, asynq.NewTask(jobs.TypeAspect, body), opts...)
			return err
		}
	}
	if err := fill(ctx, cfg.Jobs, enqueue); err != nil {
		return run, fmt.Errorf("queue %d jobs: %w", cfg.Jobs, err)
	}
	after, err := usedMemory(ctx, rdb)
	if err != nil {
		return run, err
	}
	run.UsedMemoryDelta = after.data() - before.data()
	run.RawDelta = after.used - before.used

	run.PerJob = round3(float64(run.UsedMemoryDelta) / float64(cfg.Jobs))

	prefix := "asynq:{" + jobs.QueueInteractive + "}:"
	ids, err := rdb.LRange(ctx, prefix+"pending", 0, sampledTasks-1).Result()
	if err != nil {
		return run, err
	}
	var sum int64
	for _, id := range ids {
		n, err := rdb.MemoryUsage(ctx, prefix+"t:"+id).Result()
		if err != nil {
			return run, fmt.Errorf("MEMORY USAGE of task %s: %w", id, err)
		}
		sum += n
	}
	if len(ids) > 0 {
		run.TaskHash = round3(float64(sum) / float64(len(ids)))
	}
	if run.PendingList, err = share(ctx, rdb, prefix+"pending", cfg.Jobs); err != nil {
		return run, err
	}
	if side == SideMCPJobs {
		if run.OwnerIndex, err = share(ctx, rdb, "mcpjobs:owner:"+owner+":jobs", cfg.Jobs); err != nil {
			return run, err
		}
	}
	run.KeysPerJob = round3(run.TaskHash + run.PendingList + run.OwnerIndex)
	return run, nil
}

// share is a key's whole MEMORY USAGE (every element counted) over n.
func share(ctx context.Context, rdb redis.UniversalClient, key string, n int) (float64, error) {
	b, err := rdb.MemoryUsage(ctx, key, 0).Result()
	if err != nil {
		return 0, fmt.Errorf("MEMORY USAGE %s: %w", key, err)
	}
	return round3(float64(b) / float64(n)), nil
}

// memoryInfo is what INFO memory says.
type memoryInfo struct {
	used, clients, aof int64
}

// data is used_memory without the buffers that come and go with traffic.
func (m memoryInfo) data() int64 { return m.used - m.clients - m.aof }

// usedMemory reads INFO memory.
func usedMemory(ctx context.Context, rdb redis.UniversalClient) (memoryInfo, error) {
	var m memoryInfo
	info, err := rdb.Info(ctx, "memory").Result()
	if err != nil {
		return m, err
	}
	fields := map[string]*int64{"used_memory": &m.used, "mem_clients_normal": &m.clients, "mem_aof_buffer": &m.aof}
	for line := range strings.SplitSeq(info, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if p := fields[name]; ok && p != nil {
			if *p, err = strconv.ParseInt(v, 10, 64); err != nil {
				return m, fmt.Errorf("INFO memory %s: %w", name, err)
			}
		}
	}
	if m.used == 0 {
		return m, fmt.Errorf("INFO memory has no used_memory")
	}
	return m, nil
}
