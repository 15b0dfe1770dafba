package bench

import (
	"context"
	"errors"
	"fmt"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"
)

// Side names one side of a scenario.
type Side string

// The two sides of every scenario.
const (
	SideMCPJobs  Side = "mcpjobs"
	SideBaseline Side = "baseline"
)

// Redis gives each side of a scenario its own Redis database, empty when
// the side starts.
type Redis struct {
	// MCPJobs and Baseline are the databases of the two sides: two
	// numbers of one server (see WithDB) or two servers. Some scenarios
	// keep both sides open at once, so they should differ. Required.
	MCPJobs, Baseline asynq.RedisConnOpt
	// Flush lets a side empty its database (FLUSHDB) when it holds keys at
	// the start, and again at the end. Without it, a database that holds
	// keys stops the scenario, and a side deletes only the asynq:* and
	// mcpjobs:* keys it wrote. Set it for a Redis the bench started itself;
	// for someone else's only when they said so. Default: false.
	Flush bool
}

// errNoRedis is returned by a scenario whose Redis is not set.
var errNoRedis = errors.New("bench: Redis.MCPJobs or Redis.Baseline is nil (give each side a database, e.g. bench.WithDB(opt, 14))")

// DB is the database of one side.
type DB struct {
	// Side is the side it belongs to.
	Side Side
	// Opt connects to it; Client is one connection (a pool) to it.
	Opt    asynq.RedisConnOpt
	Client redis.UniversalClient
	// Number is its database number.
	Number int

	flush bool
}

// Open opens the database of side and checks that it is empty (emptying
// it when Flush is set). Close it when the side is done.
func (r Redis) Open(ctx context.Context, side Side) (*DB, error) {
	opt := r.MCPJobs
	if side == SideBaseline {
		opt = r.Baseline
	}
	if opt == nil {
		return nil, errNoRedis
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("bench: unsupported Redis connection %T", opt)
	}
	db := &DB{Side: side, Opt: opt, Client: rdb, Number: dbNumber(opt), flush: r.Flush}
	n, err := rdb.DBSize(ctx).Result()
	if err != nil {
		_ = rdb.Close()
		return nil, fmt.Errorf("bench: redis (%s side): %w", side, err)
	}
	if n > 0 {
		if !r.Flush {
			_ = rdb.Close()
			return nil, fmt.Errorf("bench: redis database %d holds %d keys; the bench needs an empty one "+
				"(pass --flush to empty it, or choose another with --db-%s)", db.Number, n, side)
		}
		if err := rdb.FlushDB(ctx).Err(); err != nil {
			_ = rdb.Close()
			return nil, fmt.Errorf("bench: flush redis database %d: %w", db.Number, err)
		}
	}
	return db, nil
}

// NewClient opens another connection to the database; the caller closes it.
func (d *DB) NewClient() redis.UniversalClient {
	return d.Opt.MakeRedisClient().(redis.UniversalClient)
}

// Close removes what the side wrote and closes the connection.
func (d *DB) Close() error {
	ctx := context.Background()
	var err error
	if d.flush {
		err = d.Client.FlushDB(ctx).Err()
	} else {
		err = errors.Join(deleteMatching(ctx, d.Client, "asynq:*"), deleteMatching(ctx, d.Client, "mcpjobs:*"))
	}
	return errors.Join(err, d.Client.Close())
}

// deleteMatching unlinks every key matching pattern.
func deleteMatching(ctx context.Context, rdb redis.UniversalClient, pattern string) error {
	iter := rdb.Scan(ctx, 0, pattern, 1000).Iterator()
	batch := make([]string, 0, 1000)
	for iter.Next(ctx) {
		batch = append(batch, iter.Val())
		if len(batch) == cap(batch) {
			if err := rdb.Unlink(ctx, batch...).Err(); err != nil {
				return err
			}
			batch = batch[:0]
		}
	}
	if err := iter.Err(); err != nil {
		return err
	}
	if len(batch) > 0 {
		return rdb.Unlink(ctx, batch...).Err()
	}
	return nil
}

// WithDB returns opt on database number db.
func WithDB(opt asynq.RedisConnOpt, db int) (asynq.RedisConnOpt, error) {
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		o.DB = db
		return o, nil
	case *asynq.RedisClientOpt:
		c := *o
		c.DB = db
		return c, nil
	case asynq.RedisFailoverClientOpt:
		o.DB = db
		return o, nil
	case *asynq.RedisFailoverClientOpt:
		c := *o
		c.DB = db
		return c, nil
	}
	return nil, fmt.Errorf("bench: a %T has no numbered databases (run the bench on a plain or sentinel Redis)", opt)
}

func dbNumber(opt asynq.RedisConnOpt) int {
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		return o.DB
	case *asynq.RedisClientOpt:
		return o.DB
	case asynq.RedisFailoverClientOpt:
		return o.DB
	case *asynq.RedisFailoverClientOpt:
		return o.DB
	}
	return 0
}
