// Package intranet is the HTTP client for the intranet geospatial platform
// that mcpjobs workers call (the contract is docs/intranet-api.md).
//
// A [Client] does two things: [Client.Authenticate] trades the service
// account's username and password for a [Token], and [Client.Call] POSTs a
// JSON body to one [Operation] with a token, decodes the platform's envelope
// ({"code", "message", "data", "request_id"}) and returns its data.
//
// Every failure is an [*Error] with a [Class] that tells the caller what to
// do, following the contract's table of codes:
//
//   - [ClassPermanent]: invalid parameters, not found, an idempotency key
//     reused with another body, an unknown business code, any other HTTP 4xx,
//     a response that is too large. Fail the job.
//   - [ClassTokenExpired] (40003): refresh the token once, then repeat.
//   - [ClassInvalidCredentials] (40101 from the auth endpoint): retry with a
//     long backoff; do not hammer the auth endpoint.
//   - [ClassRateLimited] (42900 or HTTP 429): retry after [Error.RetryAfter].
//   - [ClassTransient] (50000, 50300, HTTP 5xx, a connection that could not be
//     made, a cancelled context): the request had no effect, or it is safe to
//     repeat. Retry with backoff.
//   - [ClassUnknownOutcome] (a timeout, a reset connection or a malformed
//     answer after the request was sent): the platform may have done the work.
//     Retry with backoff; repeat a batch submit only with the same
//     Idempotency-Key (see [WithIdempotencyKey]).
//
// Errors match the sentinels ([ErrTransient], ...) with [errors.Is], and wrap
// the underlying error, so errors.Is(err, context.Canceled) also works.
//
// Secrets stay out of errors and logs: the password is never written
// anywhere but the auth request body, and a token appears only as its
// [Fingerprint]. [Token] prints, logs and marshals as a fingerprint.
package intranet
