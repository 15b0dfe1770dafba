package web

import (
	"log/slog"
	"net"
	"net/http"
	"strings"
)

// LoopbackHosts are the Host names a site without a login answers by
// default: a browser tricked by DNS rebinding sends the attacker's name,
// never one of these.
var LoopbackHosts = []string{"localhost", "127.0.0.1", "::1"}

// hostGuard answers 421 Misdirected Request to a request whose Host is not
// allowed. An entry is a host name (any port), a host:port, or "*" (any
// host). Names compare without case and without a trailing dot.
func hostGuard(allowed []string, log *slog.Logger, next http.Handler) http.Handler {
	for _, a := range allowed {
		if a == "*" {
			return next
		}
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hostAllowed(allowed, r.Host) {
			next.ServeHTTP(w, r)
			return
		}
		log.WarnContext(r.Context(), "refused a request for a foreign host (DNS rebinding?)",
			slog.String("host", r.Host), slog.String("path", r.URL.Path), slog.String("remote", r.RemoteAddr))
		http.Error(w, "misdirected request: this site does not answer for host "+r.Host+
			" (allow it with --allowed-hosts)", http.StatusMisdirectedRequest)
	})
}

// hostAllowed reports whether the Host header host matches an entry.
func hostAllowed(allowed []string, host string) bool {
	name, port := host, ""
	if h, p, err := net.SplitHostPort(host); err == nil {
		name, port = h, p
	}
	name = normalHost(name)
	for _, a := range allowed {
		aname, aport := a, ""
		if h, p, err := net.SplitHostPort(a); err == nil {
			aname, aport = h, p
		}
		if normalHost(aname) == name && (aport == "" || aport == port) {
			return true
		}
	}
	return false
}

func normalHost(h string) string {
	return strings.TrimSuffix(strings.ToLower(strings.Trim(h, "[]")), ".")
}

// crossOrigin refuses cross-site state-changing requests (a web page
// POSTing to the dashboard's API, which would pause a queue or delete
// tasks): Go's CrossOriginProtection, which reads Sec-Fetch-Site and
// Origin. Safe methods and requests without either header (curl, scripts)
// pass.
func crossOrigin(log *slog.Logger, next http.Handler) http.Handler {
	p := http.NewCrossOriginProtection()
	p.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		log.WarnContext(r.Context(), "refused a cross-site request", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("origin", r.Header.Get("Origin")))
		http.Error(w, "cross-site request refused: the operator site only takes changes from its own pages", http.StatusForbidden)
	}))
	return p.Handler(next)
}
