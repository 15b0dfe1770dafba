package bench

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"sync/atomic"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
)

// rpcClient is a minimal MCP client over streamable HTTP: initialize, then
// tools/call, each a JSON-RPC request in a POST whose answer it reads as
// JSON or as an event stream. It does what an MCP host's transport must do
// and nothing else, so that a scenario measures the server rather than
// the client library (mcp-go's client costs more CPU per call than its
// server, and the bench's callers share the server's cores).
type rpcClient struct {
	url     string
	hc      *http.Client
	session string
	version string
	nextID  atomic.Int64
}

// dialRPC initializes a session at url.
func dialRPC(ctx context.Context, url string) (*rpcClient, error) {
	c := &rpcClient{url: url, hc: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}}
	var init mcpgo.InitializeResult
	header, err := c.post(ctx, "initialize", map[string]any{
		"protocolVersion": mcpgo.LATEST_PROTOCOL_VERSION,
		"capabilities":    map[string]any{},
		"clientInfo":      map[string]any{"name": "mcpjobs-bench-rpc", "version": "1"},
	}, &init)
	if err != nil {
		return nil, fmt.Errorf("initialize: %w", err)
	}
	c.session, c.version = header.Get("Mcp-Session-Id"), init.ProtocolVersion
	if _, err := c.post(ctx, "notifications/initialized", nil, nil); err != nil {
		return nil, fmt.Errorf("notifications/initialized: %w", err)
	}
	return c, nil
}

// callTool calls a tool that answers a job view.
func (c *rpcClient) callTool(ctx context.Context, name string, args map[string]any) (toolView, error) {
	var res struct {
		Content []struct {
			Type string `json:"type"`
			Text string `json:"text"`
		} `json:"content"`
		IsError bool `json:"isError"`
	}
	if _, err := c.post(ctx, "tools/call", map[string]any{"name": name, "arguments": args}, &res); err != nil {
		return toolView{}, fmt.Errorf("%s: %w", name, err)
	}
	var b strings.Builder
	for _, ct := range res.Content {
		if ct.Type == "text" {
			b.WriteString(ct.Text)
		}
	}
	if res.IsError {
		return toolView{}, fmt.Errorf("%s: tool error: %s", name, b.String())
	}
	var v toolView
	if err := json.Unmarshal([]byte(b.String()), &v); err != nil {
		return toolView{}, fmt.Errorf("%s: %v in %q", name, err, b.String())
	}
	return v, nil
}

// post sends one JSON-RPC message; a notification (result nil) expects no
// answer. It answers the response's headers.
func (c *rpcClient) post(ctx context.Context, method string, params, result any) (http.Header, error) {
	msg := map[string]any{"jsonrpc": "2.0", "method": method}
	if params != nil {
		msg["params"] = params
	}
	if result != nil {
		msg["id"] = c.nextID.Add(1)
	}
	body, err := json.Marshal(msg)
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	if c.session != "" {
		req.Header.Set("Mcp-Session-Id", c.session)
	}
	if c.version != "" {
		req.Header.Set("MCP-Protocol-Version", c.version)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if result == nil {
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode/100 != 2 {
			return nil, fmt.Errorf("HTTP %s", resp.Status)
		}
		return resp.Header, nil
	}
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return nil, fmt.Errorf("HTTP %s: %s", resp.Status, bytes.TrimSpace(b))
	}
	raw, err := responseMessage(resp)
	if err != nil {
		return nil, err
	}
	var answer struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(raw, &answer); err != nil {
		return nil, fmt.Errorf("decode the answer: %w", err)
	}
	if answer.Error != nil {
		return nil, fmt.Errorf("JSON-RPC error %d: %s", answer.Error.Code, answer.Error.Message)
	}
	return resp.Header, json.Unmarshal(answer.Result, result)
}

// responseMessage reads the JSON-RPC response from an answer: the body
// itself, or in an event stream the last event's data (notifications such
// as progress come before it).
func responseMessage(resp *http.Response) ([]byte, error) {
	mediaType, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type"))
	if mediaType != "text/event-stream" {
		return io.ReadAll(resp.Body)
	}
	var last, data []byte
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 8<<20)
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case bytes.HasPrefix(line, []byte("data:")):
			data = append(data, bytes.TrimSpace(line[len("data:"):])...)
		case len(line) == 0 && len(data) > 0:
			last, data = data, nil
		}
	}
	if len(data) > 0 {
		last = data
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if last == nil {
		return nil, fmt.Errorf("an event stream without a message")
	}
	return last, nil
}
