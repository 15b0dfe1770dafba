package mcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"

	mcpgo "github.com/mark3labs/mcp-go/mcp"
	mcpserver "github.com/mark3labs/mcp-go/server"
)

// ServeStdio serves MCP over in and out as LocalIdentity until ctx ends or
// in closes. Each message goes through the same handler as over HTTP (the
// task layer in front of mcp-go's streamable HTTP server), so stdio clients
// get tasks too: a line in is one request, its answer (and the notifications
// sent while it runs) lines out.
func (s *Server) ServeStdio(ctx context.Context, in io.Reader, out io.Writer) error {
	b := &stdioBridge{h: s.tasks, out: out, running: map[string]context.CancelFunc{}}
	ctx, cancel := context.WithCancel(WithIdentity(ctx, LocalIdentity))
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	r := bufio.NewReaderSize(in, 64<<10)
	lines := make(chan []byte)
	readErr := make(chan error, 1)
	go func() {
		defer close(lines)
		for {
			line, err := r.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if !errors.Is(err, io.EOF) {
					readErr <- err
				}
				return
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return nil
		case line, ok := <-lines:
			if !ok {
				select {
				case err := <-readErr:
					return fmt.Errorf("mcp: read stdin: %w", err)
				default:
					return nil
				}
			}
			if len(line) > MaxRequestBytes {
				b.write(errorLine(nil, codeInvalidParams, fmt.Sprintf("message larger than %d bytes", MaxRequestBytes)))
				continue
			}
			if b.serial(line) {
				b.handle(ctx, line)
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				b.handle(ctx, line)
			}()
		}
	}
}

// stdioBridge turns stdio lines into requests to the HTTP handler.
type stdioBridge struct {
	h http.Handler

	outMu sync.Mutex
	out   io.Writer

	mu      sync.Mutex
	session string
	version string
	running map[string]context.CancelFunc // by request ID
}

func (b *stdioBridge) write(line []byte) {
	b.outMu.Lock()
	defer b.outMu.Unlock()
	_, _ = b.out.Write(append(bytes.TrimSpace(line), '\n'))
}

func errorLine(id json.RawMessage, code int, msg string) []byte {
	if len(id) == 0 {
		id = json.RawMessage("null")
	}
	line, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": id, "error": map[string]any{"code": code, "message": msg}})
	return line
}

// serial reports whether a message must be handled before the next is
// read: initialize (it sets the session) and notifications, which are quick
// and must keep their order.
func (b *stdioBridge) serial(line []byte) bool {
	var m rpcRequest
	if json.Unmarshal(line, &m) != nil {
		return true
	}
	return m.Method == "initialize" || len(m.ID) == 0
}

func (b *stdioBridge) handle(ctx context.Context, line []byte) {
	var m rpcRequest
	if err := json.Unmarshal(line, &m); err != nil {
		b.write(errorLine(nil, -32700, "parse error: "+err.Error()))
		return
	}
	if m.Method == "" {
		return // a client's answer: this server asks nothing of the client
	}
	if m.Method == "notifications/cancelled" {
		var p struct {
			RequestID json.RawMessage `json:"requestId"`
		}
		_ = json.Unmarshal(m.Params, &p)
		b.mu.Lock()
		if cancel := b.running[string(p.RequestID)]; cancel != nil {
			cancel()
		}
		b.mu.Unlock()
		return
	}
	if len(m.ID) > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithCancel(ctx)
		defer cancel()
		b.mu.Lock()
		b.running[string(m.ID)] = cancel
		b.mu.Unlock()
		defer func() {
			b.mu.Lock()
			delete(b.running, string(m.ID))
			b.mu.Unlock()
		}()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "/mcp", bytes.NewReader(line))
	if err != nil {
		b.write(errorLine(m.ID, codeInternal, err.Error()))
		return
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	var meta requestMeta
	_ = json.Unmarshal(m.Params, &meta)
	b.mu.Lock()
	session, version := b.session, b.version
	b.mu.Unlock()
	if v := meta.Meta.ProtocolVersion; mcpgo.IsModernProtocol(v) {
		// The 2026-07-28 wire: no session, routing headers from the body.
		req.Header.Set("MCP-Protocol-Version", v)
		req.Header.Set(mcpgo.HeaderMethod, m.Method)
		if name, ok := headerName(m.Method, m.Params); ok {
			req.Header.Set(mcpgo.HeaderName, name)
		}
	} else if m.Method != "initialize" {
		if session != "" {
			req.Header.Set(mcpserver.HeaderKeySessionID, session)
		}
		if version != "" {
			req.Header.Set("MCP-Protocol-Version", version)
		}
	}
	w := &stdioWriter{b: b, header: http.Header{}}
	b.h.ServeHTTP(w, req)
	body := w.finish()
	if m.Method == "initialize" && w.status == http.StatusOK {
		var res struct {
			Result struct {
				ProtocolVersion string `json:"protocolVersion"`
			} `json:"result"`
		}
		_ = json.Unmarshal(body, &res)
		b.mu.Lock()
		b.session = w.header.Get(mcpserver.HeaderKeySessionID)
		b.version = res.Result.ProtocolVersion
		b.mu.Unlock()
	}
	switch {
	case len(m.ID) == 0:
		// A notification: nothing to answer.
	case len(bytes.TrimSpace(body)) > 0 && json.Valid(body):
		b.write(body)
	case !w.answered:
		msg := strings.TrimSpace(string(body))
		if msg == "" {
			msg = http.StatusText(w.status)
		}
		b.write(errorLine(m.ID, codeInternal, msg))
	}
}

// headerName is the Mcp-Name header of a request: the tool, resource or
// prompt, or the task.
func headerName(method string, params json.RawMessage) (string, bool) {
	if strings.HasPrefix(method, "tasks/") {
		var p struct {
			TaskID string `json:"taskId"`
		}
		_ = json.Unmarshal(params, &p)
		return p.TaskID, p.TaskID != ""
	}
	return mcpgo.ExtractHeaderName(mcpgo.MCPMethod(method), params)
}

// stdioWriter is the response writer of one bridged request: server-sent
// events go out as lines as they come; a JSON answer is kept for finish.
type stdioWriter struct {
	b        *stdioBridge
	header   http.Header
	status   int
	buf      bytes.Buffer
	answered bool // an event carried the answer
}

func (w *stdioWriter) Header() http.Header { return w.header }

func (w *stdioWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *stdioWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	w.buf.Write(p)
	w.events()
	return len(p), nil
}

// Flush implements http.Flusher, so that mcp-go streams notifications.
func (w *stdioWriter) Flush() {}

func (w *stdioWriter) sse() bool {
	return strings.HasPrefix(w.header.Get("Content-Type"), "text/event-stream")
}

// events sends out each complete event.
func (w *stdioWriter) events() {
	if !w.sse() {
		return
	}
	for {
		data := w.buf.Bytes()
		i := bytes.Index(data, []byte("\n\n"))
		if i < 0 {
			return
		}
		event := string(data[:i])
		w.buf.Next(i + 2)
		var payload strings.Builder
		for l := range strings.SplitSeq(event, "\n") {
			if d, ok := strings.CutPrefix(strings.TrimRight(l, "\r"), "data:"); ok {
				payload.WriteString(strings.TrimPrefix(d, " "))
			}
		}
		if payload.Len() > 0 {
			w.b.write([]byte(payload.String()))
			var m struct {
				Method string `json:"method"`
			}
			if json.Unmarshal([]byte(payload.String()), &m) == nil && m.Method == "" {
				w.answered = true
			}
		}
	}
}

// finish answers the body of a JSON answer (nil after events).
func (w *stdioWriter) finish() []byte {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	if w.sse() {
		w.buf.WriteString("\n\n")
		w.events()
		return nil
	}
	return w.buf.Bytes()
}
