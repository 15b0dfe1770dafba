package intranet_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"

	"github.com/mcpjobs/mcpjobs/worker/intranet"
)

func ExampleFingerprint() {
	fmt.Println(intranet.Fingerprint("secret"))
	fmt.Println(intranet.Fingerprint(""))
	fmt.Println(intranet.Token{Value: "secret"})
	// Output:
	// sha256:2bb80d53
	// none
	// tok:2bb80d53
}

func ExampleClient_Call() {
	// A stand-in for the platform.
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/auth/token":
			fmt.Fprint(w, `{"code":0,"message":"success","data":{"token":"t-1","expires_in":7200}}`)
		case "/api/bigquery/query":
			fmt.Fprint(w, `{"code":40001,"message":"syntax error near FORM","request_id":"r-2"}`)
		default:
			fmt.Fprint(w, `{"code":0,"message":"success","data":{"cell_count":512000},"request_id":"r-1"}`)
		}
	}))
	defer srv.Close()

	c, err := intranet.New(intranet.Config{BaseURL: srv.URL, Username: "svc-mcp", Password: "pw"})
	if err != nil {
		panic(err)
	}
	ctx := context.Background()
	tok, err := c.Authenticate(ctx)
	if err != nil {
		panic(err)
	}

	resp, err := c.Call(ctx, intranet.OpAspect, tok.Value, map[string]any{
		"coverage_id": "dem_30m", "bbox": []float64{116.0, 39.8, 116.2, 40.0}, "scale_m": 30,
	})
	if err != nil {
		panic(err)
	}
	var data struct {
		CellCount int `json:"cell_count"`
	}
	_ = json.Unmarshal(resp.Data, &data)
	fmt.Println(data.CellCount, resp.RequestID)

	_, err = c.Call(ctx, intranet.OpBigQuery, tok.Value, map[string]any{"sql": "SELECT * FORM t"})
	fmt.Println(err)
	fmt.Println(intranet.ClassOf(err), errors.Is(err, intranet.ErrPermanent), intranet.Retryable(err))
	// Output:
	// 512000 r-1
	// intranet bigquery: code 40001: syntax error near FORM
	// permanent true false
}
