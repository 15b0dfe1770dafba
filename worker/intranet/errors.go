package intranet

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Class says what a caller should do about a failed call.
type Class int

// The classes of failure; see the package documentation.
const (
	// ClassPermanent: the call cannot succeed as it is; fail the job.
	ClassPermanent Class = iota + 1
	// ClassTransient: the call had no effect or may be repeated; retry with backoff.
	ClassTransient
	// ClassTokenExpired: the token is expired or invalid (40003); refresh and repeat.
	ClassTokenExpired
	// ClassRateLimited: slow down; retry after Error.RetryAfter.
	ClassRateLimited
	// ClassUnknownOutcome: the request was sent but no usable answer came;
	// the platform may have acted. Retry only if repeating is safe.
	ClassUnknownOutcome
	// ClassInvalidCredentials: the auth endpoint refused the username or
	// password (40101); retry with a long backoff.
	ClassInvalidCredentials
)

var classNames = [...]string{
	ClassPermanent:          "permanent",
	ClassTransient:          "transient",
	ClassTokenExpired:       "token_expired",
	ClassRateLimited:        "rate_limited",
	ClassUnknownOutcome:     "unknown_outcome",
	ClassInvalidCredentials: "invalid_credentials",
}

// String returns the class's snake_case name, e.g. "token_expired".
func (c Class) String() string {
	if c > 0 && int(c) < len(classNames) {
		return classNames[c]
	}
	return fmt.Sprintf("Class(%d)", int(c))
}

// Sentinels, one per class: errors.Is(err, ErrTokenExpired) reports whether
// err is an *Error of ClassTokenExpired.
var (
	ErrPermanent          = errors.New("intranet: permanent error")
	ErrTransient          = errors.New("intranet: transient error")
	ErrTokenExpired       = errors.New("intranet: token expired")
	ErrRateLimited        = errors.New("intranet: rate limited")
	ErrUnknownOutcome     = errors.New("intranet: unknown outcome")
	ErrInvalidCredentials = errors.New("intranet: invalid credentials")
)

func (c Class) sentinel() error {
	switch c {
	case ClassPermanent:
		return ErrPermanent
	case ClassTransient:
		return ErrTransient
	case ClassTokenExpired:
		return ErrTokenExpired
	case ClassRateLimited:
		return ErrRateLimited
	case ClassUnknownOutcome:
		return ErrUnknownOutcome
	case ClassInvalidCredentials:
		return ErrInvalidCredentials
	}
	return nil
}

// maxMessage is the longest platform message kept in an Error, in runes.
const maxMessage = 500

// Error is a failed platform call. Its text never contains a token, a
// password or an Authorization header.
type Error struct {
	// Op is the operation's name ("aspect", "bigquery", ..., "auth").
	Op string
	// Class says what to do about it.
	Class Class
	// Code is the envelope's code, 0 if the answer had none.
	Code int
	// HTTPStatus is the HTTP status, 0 if no answer came.
	HTTPStatus int
	// Message is the platform's message (or a description of the failure),
	// at most 500 characters.
	Message string
	// RetryAfter is how long to wait before retrying, for ClassRateLimited.
	RetryAfter time.Duration
	// RequestID is the platform's request_id, if it sent one.
	RequestID string
	// Duration is how long the call took until it failed.
	Duration time.Duration
	// Err is the underlying error (transport, context, decoding), if any.
	Err error
}

// Error returns e.g. "intranet bigquery: code 40001: syntax error at ...",
// "intranet aspect: HTTP 503" or
// "intranet aspect: unknown outcome: context deadline exceeded".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("intranet ")
	if e.Op != "" {
		b.WriteString(e.Op)
	} else {
		b.WriteString("call")
	}
	b.WriteString(": ")
	if e.Class == ClassUnknownOutcome {
		b.WriteString("unknown outcome: ")
	}
	switch {
	case e.Code != 0:
		fmt.Fprintf(&b, "code %d", e.Code)
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
	case e.HTTPStatus != 0 && (e.HTTPStatus < 200 || e.HTTPStatus > 299):
		fmt.Fprintf(&b, "HTTP %d", e.HTTPStatus)
		if e.Message != "" {
			b.WriteString(": ")
			b.WriteString(e.Message)
		}
	case e.Err != nil:
		if e.Message != "" {
			b.WriteString(e.Message)
			b.WriteString(": ")
		}
		b.WriteString(shortError(e.Err))
	case e.Message != "":
		b.WriteString(e.Message)
	default:
		b.WriteString(e.Class.String())
	}
	if e.RetryAfter > 0 {
		fmt.Fprintf(&b, " (retry after %s)", e.RetryAfter)
	}
	return b.String()
}

// shortError drops net/http's `Post "http://...":` prefix.
func shortError(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err.Error()
	}
	return err.Error()
}

// Unwrap returns the underlying error.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's class.
func (e *Error) Is(target error) bool {
	s := e.Class.sentinel()
	return s != nil && target == s
}

// ClassOf returns the class of the *Error in err's chain, or 0 if none.
func ClassOf(err error) Class {
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return 0
}

// Retryable reports whether err is an *Error worth retrying: transient,
// rate limited, unknown outcome, token expired or invalid credentials. The
// caller chooses the delay (and, for unknown outcomes, whether repeating is
// safe).
func Retryable(err error) bool {
	switch ClassOf(err) {
	case ClassTransient, ClassRateLimited, ClassUnknownOutcome, ClassTokenExpired, ClassInvalidCredentials:
		return true
	}
	return false
}

// classifyCode maps a non-zero envelope code to a class.
func classifyCode(code int) Class {
	switch code {
	case 40003:
		return ClassTokenExpired
	case 40101:
		return ClassInvalidCredentials
	case 42900:
		return ClassRateLimited
	case 50000, 50300:
		return ClassTransient
	}
	return ClassPermanent
}

// truncate keeps at most n runes of s, ending with "..." when it cut.
func truncate(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	i, count := 0, 0
	for j := range s {
		if count == n-3 {
			i = j
			break
		}
		count++
	}
	return s[:i] + "..."
}

// redact replaces every secret in s by "[redacted]".
func redact(s string, secrets ...string) string {
	for _, sec := range secrets {
		if sec != "" && strings.Contains(s, sec) {
			s = strings.ReplaceAll(s, sec, "[redacted]")
		}
	}
	return s
}
