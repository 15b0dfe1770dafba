package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/hibiken/asynq"
	"github.com/redis/go-redis/v9"

	"github.com/mcpjobs/mcpjobs/internal/config"
)

// errUsage is returned after a flag error has been printed.
var errUsage = errors.New("usage")

// app is what every subcommand shares: configuration, logger and streams.
type app struct {
	name   string
	cfg    config.Config
	log    *slog.Logger
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer
	// retention is how long finished jobs stay readable (--retention).
	retention time.Duration
	// statusServiceToken lets query_task_status use the service token for
	// tasks not submitted through mcpjobs (--status-service-token).
	statusServiceToken bool
}

func newApp(name string, stdin io.Reader, stdout, stderr io.Writer, getenv func(string) string) (*app, error) {
	cfg, err := config.FromEnv(getenv)
	if err != nil {
		return nil, err
	}
	log := newLogger(stderr, cfg)
	redisLoggerOnce.Do(func() { redis.SetLogger(redisLogger{log.With(slog.String("component", "go-redis"))}) })
	return &app{name: name, cfg: cfg, log: log, stdin: stdin, stdout: stdout, stderr: stderr}, nil
}

// redisLoggerOnce sets go-redis's process-wide logger once, before any
// client exists.
var redisLoggerOnce sync.Once

// redisLogger sends go-redis's own messages (reconnects, pool errors) to
// slog at warn level instead of its global standard logger.
type redisLogger struct{ l *slog.Logger }

func (r redisLogger) Printf(ctx context.Context, format string, v ...any) {
	r.l.WarnContext(ctx, fmt.Sprintf(format, v...))
}

// newLogger logs text on a terminal and JSON otherwise, unless LOG_FORMAT
// says which. Logs always go to stderr: stdout may carry MCP over stdio.
func newLogger(w io.Writer, cfg config.Config) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.LogLevel, ReplaceAttr: durationsInMillis}
	format := cfg.LogFormat
	if format == "" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	if format == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// durationsInMillis logs a duration as a number of milliseconds under its
// key plus "_ms" (JSON logs would otherwise carry nanoseconds).
func durationsInMillis(_ []string, a slog.Attr) slog.Attr {
	if a.Value.Kind() != slog.KindDuration {
		return a
	}
	ms := float64(a.Value.Duration().Microseconds()) / 1000
	return slog.Float64(a.Key+"_ms", ms)
}

// flagSet returns a FlagSet whose --help lists the flags and the
// environment variables: on stdout when asked for, on stderr after a usage
// error.
func (a *app) flagSet(synopsis string, env ...string) *flag.FlagSet {
	fs := flag.NewFlagSet("mcpjobs "+a.name, flag.ContinueOnError)
	errOut := &watchedWriter{w: a.stderr}
	fs.SetOutput(errOut)
	fs.Usage = func() {
		// The flag package prints its error before the usage; with no
		// error printed, this is a --help.
		w := a.stdout
		if errOut.written {
			w = a.stderr
		}
		fmt.Fprintf(w, "usage: mcpjobs %s %s\n\nflags:\n", a.name, synopsis)
		fs.SetOutput(w)
		fs.PrintDefaults()
		fs.SetOutput(errOut)
		if len(env) > 0 {
			fmt.Fprintln(w, "\nenvironment (flags override):")
			for _, v := range config.Vars {
				for _, name := range env {
					if v.Name == name {
						fmt.Fprintf(w, "  %-22s %s\n", v.Name, v.Description)
					}
				}
			}
		}
	}
	return fs
}

// watchedWriter remembers whether anything was written through it.
type watchedWriter struct {
	w       io.Writer
	written bool
}

func (w *watchedWriter) Write(p []byte) (int, error) {
	w.written = true
	return w.w.Write(p)
}

// parse parses flags; a flag error has been printed already.
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return errUsage
	}
	return nil
}

// defaultRedisURL is used when REDIS_URL is unset (outside dev).
const defaultRedisURL = "redis://127.0.0.1:6379"

// openRedis connects to a Redis URL as asynq parses it (redis://,
// rediss://, redis-sentinel://HOST:PORT,HOST:PORT?master=NAME) and checks
// that it answers. caFile (REDIS_CA_FILE), when set, is a PEM file of the
// certificate authorities a rediss:// server's certificate must chain to.
func openRedis(ctx context.Context, url, caFile string) (redis.UniversalClient, error) {
	opt, err := asynq.ParseRedisURI(url)
	if err != nil {
		return nil, fmt.Errorf("REDIS_URL: %w", err)
	}
	switch o := opt.(type) {
	case asynq.RedisClientOpt:
		if caFile != "" {
			if o.TLSConfig == nil {
				return nil, fmt.Errorf("REDIS_CA_FILE is set but REDIS_URL %s is not TLS: use rediss://, or unset REDIS_CA_FILE", redactURL(url))
			}
			if o.TLSConfig.RootCAs, err = loadCAs(caFile); err != nil {
				return nil, err
			}
		}
		opt = o
	case asynq.RedisFailoverClientOpt:
		if o.MasterName == "" {
			return nil, fmt.Errorf("REDIS_URL %s: name the monitored primary: redis-sentinel://HOST:PORT[,HOST:PORT]?master=NAME", redactURL(url))
		}
		if caFile != "" {
			return nil, fmt.Errorf("REDIS_CA_FILE applies to rediss:// URLs only, not to %s: unset it", redactURL(url))
		}
	default:
		if caFile != "" {
			return nil, fmt.Errorf("REDIS_CA_FILE applies to rediss:// URLs only, not to %s: unset it", redactURL(url))
		}
	}
	rdb, ok := opt.MakeRedisClient().(redis.UniversalClient)
	if !ok {
		return nil, fmt.Errorf("REDIS_URL: unsupported connection type %T", opt)
	}
	pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := rdb.Ping(pctx).Err(); err != nil {
		_ = rdb.Close()
		var unknownCA x509.UnknownAuthorityError
		var verify *tls.CertificateVerificationError
		if errors.As(err, &unknownCA) || errors.As(err, &verify) {
			return nil, fmt.Errorf("redis at %s: its TLS certificate is not trusted: %w (set REDIS_CA_FILE to the PEM file of the CA that signed it)", redactURL(url), err)
		}
		return nil, fmt.Errorf("redis does not answer at %s: %w (start one, or set REDIS_URL)", redactURL(url), err)
	}
	return rdb, nil
}

// loadCAs reads a PEM file of certificate authorities (REDIS_CA_FILE).
func loadCAs(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("REDIS_CA_FILE: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("REDIS_CA_FILE %s holds no PEM certificate: give the CA's certificate (-----BEGIN CERTIFICATE-----)", file)
	}
	return pool, nil
}

// redactURL hides a password in a URL for messages.
func redactURL(u string) string {
	scheme, rest, ok := strings.Cut(u, "://")
	if !ok {
		return u
	}
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		return scheme + "://***@" + rest[at+1:]
	}
	return u
}

// serveHTTP serves h on l until ctx ends, then shuts down gracefully.
func serveHTTP(ctx context.Context, l net.Listener, h http.Handler, log *slog.Logger) error {
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(l) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		log.Warn("http shutdown", slog.Any("error", err))
		_ = srv.Close()
	}
	return nil
}

// listen opens a TCP listener with an error that says what to do.
func listen(addr, flagName string) (net.Listener, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w (choose another with %s)", addr, err, flagName)
	}
	return l, nil
}

// isLoopback reports whether addr binds only a loopback interface.
func isLoopback(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
