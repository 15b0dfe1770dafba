package intranet

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// Envelope is the platform's answer to every call it handles itself:
// {"code": 0, "message": "success", "data": {...}, "request_id": "r-..."}.
type Envelope struct {
	Code      int             `json:"code"`
	Message   string          `json:"message"`
	Data      json.RawMessage `json:"data"`
	RequestID string          `json:"request_id"`
}

// Errors of DecodeEnvelope; match them with errors.Is.
var (
	errNotObject = errors.New("intranet: envelope is not a JSON object")
	errNoCode    = errors.New("intranet: envelope has no numeric code")
)

// DecodeEnvelope decodes a response body. The body must be a JSON object with
// an integer "code"; "message" and "request_id", when present, must be
// strings (null counts as absent). "data" is kept as it came, or nil if
// absent. Anything else is an error.
func DecodeEnvelope(body []byte) (Envelope, error) {
	trimmed := bytes.TrimLeft(body, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return Envelope{}, errNotObject
	}
	var raw struct {
		Code      json.RawMessage `json:"code"`
		Message   string          `json:"message"`
		Data      json.RawMessage `json:"data"`
		RequestID string          `json:"request_id"`
	}
	if err := json.Unmarshal(trimmed, &raw); err != nil {
		return Envelope{}, fmt.Errorf("intranet: envelope: %w", err)
	}
	code, err := parseCode(raw.Code)
	if err != nil {
		return Envelope{}, err
	}
	return Envelope{Code: code, Message: raw.Message, Data: raw.Data, RequestID: raw.RequestID}, nil
}

// parseCode accepts a JSON integer literal (no quotes, fraction or exponent).
func parseCode(raw json.RawMessage) (int, error) {
	if len(raw) == 0 {
		return 0, errNoCode
	}
	for i, c := range raw {
		if !(c >= '0' && c <= '9' || c == '-' && i == 0) {
			return 0, fmt.Errorf("%w (got %.20s)", errNoCode, raw)
		}
	}
	n, err := strconv.Atoi(string(raw))
	if err != nil {
		return 0, fmt.Errorf("%w (got %.20s)", errNoCode, raw)
	}
	return n, nil
}
