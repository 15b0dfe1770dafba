// Package token keeps the one platform access token that every worker
// replica shares, in Redis, and refreshes it once per expiry.
//
// The record (token, issue number, informational generation, expiry, the
// fingerprint of the credentials that fetched it, who stored it and when)
// lives in one Redis hash; each process keeps a copy in memory and uses it
// while it is valid. A refresh — ahead of expiry by a margin, or after the
// platform answered 40003 — asks to replace the token that failed, named by
// its value, never by a generation number. Inside one process concurrent
// askers share one attempt (singleflight keyed by the stale token). Across
// processes one replica takes a Redis lock (github.com/bsm/redislock: SET NX
// PX with a random value, Lua compare-and-delete release), re-reads the
// record and calls the auth endpoint only if it still holds the stale token
// (or none). Right after the auth reply it takes an issue number from Redis
// (seq.lua: a counter that never goes below the stored record's); the write
// (set.lua) succeeds only over a token with a lower number, so the record
// keeps the token the platform issued last — the only live one, since the
// platform ends every earlier token — and a writer that loses adopts the
// stored token. New tokens are announced on pub/sub; the others wake on the
// message or by re-reading.
//
// Failed auth calls start a cooldown per credentials fingerprint (see
// intranet.Client.CredentialsFingerprint): an outage costs one auth call per
// cooldown across the replicas that share credentials, while a replica whose
// credentials are refused (40101) pauses only itself and its like. Its errors
// wrap ErrCredentialsRefused and intranet.ErrInvalidCredentials; it reports
// CredentialsRefused, and Heal tells when it may work again.
//
// Nothing assumes that Redis keeps its data: after a loss the generation and
// issue numbers start again at 1, and the in-memory marker of a refused token
// names that token only.
package token
