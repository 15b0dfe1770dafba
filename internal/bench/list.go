package bench

import (
	"context"
	"fmt"
	"time"

	"github.com/mcpjobs/mcpjobs/jobs"
	"github.com/mcpjobs/mcpjobs/jobs/store"
)

// ListConfig sets up the list scenario.
type ListConfig struct {
	// Jobs is the number of jobs of one owner. Default: 100000.
	Jobs int
	// Pages is the number of pages read in each mode. Default: 200.
	Pages int
	// Redis gives the scenario its database (the mcpjobs side's). Required.
	Redis Redis
}

func (c ListConfig) withDefaults() ListConfig {
	if c.Jobs <= 0 {
		c.Jobs = 100000
	}
	if c.Pages <= 0 {
		c.Pages = 200
	}
	return c
}

// listLimit is the page size the list scenario reads.
const listLimit = 50

// ListReport times list_jobs' pages among many jobs of one owner.
type ListReport struct {
	Scenario string `json:"scenario"`
	Jobs     int    `json:"jobs"`
	Limit    int    `json:"limit"`
	// Page is a page of the newest jobs (store.Client.List, no filter).
	Page Percentiles `json:"page"`
	// Filtered is a page filtered on a state no job is in, which reads the
	// most a filtered page reads (the newest 1,000 jobs).
	Filtered Percentiles `json:"filtered_page"`
	// PerJob is the baseline: the page's IDs from the index, then one
	// store.Client.Get per job (how list_jobs read before).
	PerJob Percentiles `json:"per_job_gets"`
	// Ratio is PerJob's p99 over Page's.
	Ratio float64 `json:"p99_ratio_per_job_over_page"`
}

// List queues Jobs pending aspect jobs of one owner, with no worker, and
// times Pages pages of 50 in each mode.
func List(ctx context.Context, cfg ListConfig) (*ListReport, error) {
	cfg = cfg.withDefaults()
	db, err := cfg.Redis.Open(ctx, SideMCPJobs)
	if err != nil {
		return nil, err
	}
	defer db.Close()
	jc := store.NewClient(db.Client, store.Options{Logger: discard})
	defer jc.Close()
	err = fill(ctx, cfg.Jobs, func(ctx context.Context) error {
		_, err := jc.Enqueue(ctx, owner, aspectPayload)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("queue %d jobs: %w", cfg.Jobs, err)
	}
	rep := &ListReport{Scenario: "list", Jobs: cfg.Jobs, Limit: listLimit}
	modes := []struct {
		into *Percentiles
		page func() (int, error)
	}{
		{&rep.Page, func() (int, error) {
			l, err := jc.List(ctx, owner, "", listLimit)
			return len(l), err
		}},
		{&rep.Filtered, func() (int, error) {
			_, err := jc.List(ctx, owner, jobs.StateCompleted, listLimit)
			return listLimit, err
		}},
		{&rep.PerJob, func() (int, error) {
			ids, err := db.Client.ZRevRange(ctx, "mcpjobs:owner:"+owner+":jobs", 0, listLimit-1).Result()
			for _, id := range ids {
				if err != nil {
					break
				}
				_, err = jc.Get(ctx, owner, id)
			}
			return len(ids), err
		}},
	}
	for _, m := range modes {
		ds := make([]time.Duration, 0, cfg.Pages)
		for range cfg.Pages {
			start := time.Now()
			n, err := m.page()
			if err != nil {
				return nil, err
			}
			if n != min(listLimit, cfg.Jobs) {
				return nil, fmt.Errorf("a page answered %d jobs of %d", n, cfg.Jobs)
			}
			ds = append(ds, time.Since(start))
		}
		*m.into = percentiles(ds)
	}
	rep.Ratio = ratio(rep.PerJob.P99, rep.Page.P99)
	return rep, ctx.Err()
}
