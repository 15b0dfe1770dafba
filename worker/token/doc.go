// Package token keeps the one platform access token that every worker
// replica shares, in Redis, and refreshes it once per expiry.
//
// The record (token, generation, expiry, who refreshed it and when) lives in
// one Redis hash; each process keeps a copy in memory and uses it while it
// is valid. A refresh — ahead of expiry by a margin, or after the platform
// answered 40003 — asks to replace the generation that failed. Inside one
// process concurrent askers share one attempt (singleflight). Across
// processes one replica takes a Redis lock (github.com/bsm/redislock: SET NX
// PX with a random value, Lua compare-and-delete release), re-reads the
// generation and calls the auth endpoint only if nobody replaced it
// meanwhile. The new token is written with a compare-and-set on the
// generation, so a holder whose lock ran out cannot overwrite a newer
// token, and announced on pub/sub; the others wake on the message or by
// re-reading. Failed auth calls set a shared cooldown, so an auth outage
// costs one auth call per cooldown across all replicas, not one per job.
package token
