package intranet

import (
	"bytes"
	"encoding/json"
	"testing"
)

func TestDecodeEnvelope(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    Envelope
		wantErr bool
	}{
		{name: "success", body: `{"code": 0, "message": "success", "data": {"a": 1}, "request_id": "r-1"}`,
			want: Envelope{Code: 0, Message: "success", Data: json.RawMessage(`{"a": 1}`), RequestID: "r-1"}},
		{name: "business error", body: ` {"code":40001,"message":"bad bbox"}`,
			want: Envelope{Code: 40001, Message: "bad bbox"}},
		{name: "null data and message", body: `{"code":0,"message":null,"data":null}`,
			want: Envelope{Data: json.RawMessage(`null`)}},
		{name: "extra fields", body: `{"code":0,"extra":[1,2]}`, want: Envelope{}},
		{name: "negative code", body: `{"code":-1}`, want: Envelope{Code: -1}},
		{name: "empty", body: ``, wantErr: true},
		{name: "garbage", body: `hello`, wantErr: true},
		{name: "array", body: `[{"code":0}]`, wantErr: true},
		{name: "null", body: `null`, wantErr: true},
		{name: "no code", body: `{"message":"success"}`, wantErr: true},
		{name: "null code", body: `{"code":null}`, wantErr: true},
		{name: "string code", body: `{"code":"0"}`, wantErr: true},
		{name: "fraction code", body: `{"code":0.5}`, wantErr: true},
		{name: "exponent code", body: `{"code":4e4}`, wantErr: true},
		{name: "huge code", body: `{"code":123456789012345678901234567890}`, wantErr: true},
		{name: "message not string", body: `{"code":1,"message":42}`, wantErr: true},
		{name: "truncated", body: `{"code":0,"data":{`, wantErr: true},
		{name: "trailing garbage", body: `{"code":0} x`, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := DecodeEnvelope([]byte(tt.body))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("decoded %+v, want an error", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Code != tt.want.Code || got.Message != tt.want.Message || got.RequestID != tt.want.RequestID ||
				!bytes.Equal(got.Data, tt.want.Data) {
				t.Errorf("got %+v (data %s), want %+v (data %s)", got, got.Data, tt.want, tt.want.Data)
			}
		})
	}
}

func FuzzDecodeEnvelope(f *testing.F) {
	for _, seed := range []string{
		`{"code": 0, "message": "success", "data": {"task_id": "bt-1"}, "request_id": "r-1"}`,
		`{"code": 42900, "message": "rate limited", "data": {"retry_after_ms": 1500}}`,
		`{"code": 40001, "message": "invalid parameters: bbox"}`,
		`{"code":0,"data":null}`,
		`{"code":0,"data":"<\u2028>&"}`,
		`{"Code":1,"code":2}`,
		`{"code":-0}`,
		`{"code":"1"}`,
		`{"code":1e3}`,
		"{\"code\":0,\"message\":\"\xff\"}",
		`[]`,
		`null`,
		``,
		`<html>502 Bad Gateway</html>`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		env, err := DecodeEnvelope(body)
		if err != nil {
			return
		}
		b1, err := json.Marshal(env)
		if err != nil {
			t.Fatalf("re-encode %+v: %v", env, err)
		}
		env2, err := DecodeEnvelope(b1)
		if err != nil {
			t.Fatalf("decode re-encoded %s: %v", b1, err)
		}
		if env2.Code != env.Code || env2.Message != env.Message || env2.RequestID != env.RequestID {
			t.Fatalf("round trip changed %+v into %+v", env, env2)
		}
		b2, err := json.Marshal(env2)
		if err != nil || !bytes.Equal(b1, b2) {
			t.Fatalf("re-encoding is not stable: %s vs %s (%v)", b1, b2, err)
		}
	})
}
