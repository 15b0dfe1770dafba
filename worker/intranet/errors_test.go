package intranet

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestClassString(t *testing.T) {
	want := map[Class]string{
		ClassPermanent:          "permanent",
		ClassTransient:          "transient",
		ClassTokenExpired:       "token_expired",
		ClassRateLimited:        "rate_limited",
		ClassUnknownOutcome:     "unknown_outcome",
		ClassInvalidCredentials: "invalid_credentials",
		0:                       "Class(0)",
		99:                      "Class(99)",
	}
	for c, s := range want {
		if c.String() != s {
			t.Errorf("Class(%d).String() = %q, want %q", int(c), c.String(), s)
		}
	}
}

func TestErrorText(t *testing.T) {
	tests := []struct {
		err  *Error
		want string
	}{
		{&Error{Op: "bigquery", Class: ClassPermanent, Code: 40001, HTTPStatus: 200, Message: "syntax error at 1"},
			"intranet bigquery: code 40001: syntax error at 1"},
		{&Error{Op: "aspect", Class: ClassTransient, HTTPStatus: 503}, "intranet aspect: HTTP 503"},
		{&Error{Op: "aspect", Class: ClassUnknownOutcome, Err: context.DeadlineExceeded},
			"intranet aspect: unknown outcome: context deadline exceeded"},
		{&Error{Op: "aspect", Class: ClassRateLimited, HTTPStatus: 429, RetryAfter: 2 * time.Second},
			"intranet aspect: HTTP 429 (retry after 2s)"},
		{&Error{Op: "dag", Class: ClassRateLimited, Code: 42900, Message: "slow down", RetryAfter: 1500 * time.Millisecond},
			"intranet dag: code 42900: slow down (retry after 1.5s)"},
		{&Error{Op: "aspect", Class: ClassUnknownOutcome, HTTPStatus: 200, Message: "malformed response", Err: errNotObject},
			"intranet aspect: unknown outcome: malformed response: intranet: envelope is not a JSON object"},
		{&Error{Op: "aspect", Class: ClassPermanent, HTTPStatus: 200, Message: "response larger than 10 bytes"},
			"intranet aspect: response larger than 10 bytes"},
		{&Error{Class: ClassTransient}, "intranet call: transient"},
	}
	for _, tt := range tests {
		if got := tt.err.Error(); got != tt.want {
			t.Errorf("Error() = %q, want %q", got, tt.want)
		}
	}
}

func TestErrorIsAndClassOf(t *testing.T) {
	e := &Error{Op: "aspect", Class: ClassTransient, Err: context.Canceled}
	wrapped := fmt.Errorf("handler: %w", e)
	if !errors.Is(wrapped, ErrTransient) || !errors.Is(wrapped, context.Canceled) || errors.Is(wrapped, ErrPermanent) {
		t.Error("errors.Is does not follow the class and the wrapped error")
	}
	if ClassOf(wrapped) != ClassTransient || !Retryable(wrapped) {
		t.Error("ClassOf/Retryable of a wrapped *Error")
	}
	if ClassOf(errors.New("x")) != 0 || Retryable(errors.New("x")) || Retryable(nil) {
		t.Error("ClassOf/Retryable of a foreign error")
	}
	if Retryable(&Error{Class: ClassPermanent}) {
		t.Error("permanent is retryable")
	}
	if errors.Is(&Error{}, ErrPermanent) {
		t.Error("a zero-class Error matches a sentinel")
	}
}

func TestTruncate(t *testing.T) {
	long := strings.Repeat("ü", 600)
	got := truncate(long, maxMessage)
	if n := utf8.RuneCountInString(got); n != maxMessage || !strings.HasSuffix(got, "...") || !utf8.ValidString(got) {
		t.Errorf("truncate: %d runes, valid %v", n, utf8.ValidString(got))
	}
	if truncate("short", maxMessage) != "short" {
		t.Error("truncate changed a short string")
	}
}

func TestHeaderRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 26, 10, 0, 0, 0, time.UTC)
	tests := []struct {
		value string
		want  time.Duration
	}{
		{"", time.Second},
		{"5", 5 * time.Second},
		{" 0 ", time.Second},
		{"-3", time.Second},
		{"0.25", 250 * time.Millisecond},
		{"NaN", time.Second},
		{"Inf", 10 * time.Minute},
		{"999999999999", 10 * time.Minute},
		{now.Add(42 * time.Second).Format(http.TimeFormat), 42 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), time.Second},
		{now.Add(24 * time.Hour).Format(http.TimeFormat), 10 * time.Minute},
		{"soon", time.Second},
	}
	for _, tt := range tests {
		h := http.Header{}
		if tt.value != "" {
			h.Set("Retry-After", tt.value)
		}
		if got := headerRetryAfter(h, now); got != tt.want {
			t.Errorf("Retry-After %q = %s, want %s", tt.value, got, tt.want)
		}
	}
}

func TestDataRetryAfter(t *testing.T) {
	h := http.Header{"Retry-After": {"7"}}
	tests := []struct {
		data string
		h    http.Header
		want time.Duration
	}{
		{`{"retry_after_ms": 1500}`, nil, 1500 * time.Millisecond},
		{`{"retry_after_ms": "200"}`, nil, 200 * time.Millisecond},
		{`{"retry_after_ms": 0}`, nil, time.Second},
		{`{"retry_after_ms": -5}`, h, 7 * time.Second},
		{`null`, nil, time.Second},
		{``, h, 7 * time.Second},
		{`[1]`, nil, time.Second},
	}
	for _, tt := range tests {
		if tt.h == nil {
			tt.h = http.Header{}
		}
		if got := dataRetryAfter([]byte(tt.data), tt.h); got != tt.want {
			t.Errorf("data %s = %s, want %s", tt.data, got, tt.want)
		}
	}
}
