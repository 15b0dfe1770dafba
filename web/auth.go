package web

import (
	"crypto/sha256"
	"crypto/subtle"
	"log/slog"
	"net/http"
)

// basicAuth lets through the requests that carry username and password
// as HTTP basic auth and answers 401 to the others. Both are compared in
// constant time, through their SHA-256 digests so that neither the
// content nor the length of the expected values shows in the timing.
func basicAuth(username, password string, log *slog.Logger, next http.Handler) http.Handler {
	wantUser := sha256.Sum256([]byte(username))
	wantPass := sha256.Sum256([]byte(password))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		gotUser := sha256.Sum256([]byte(user))
		gotPass := sha256.Sum256([]byte(pass))
		match := subtle.ConstantTimeCompare(gotUser[:], wantUser[:]) &
			subtle.ConstantTimeCompare(gotPass[:], wantPass[:])
		if !ok || match != 1 {
			if ok {
				// A browser's first request carries no credentials;
				// only a wrong login is worth a line.
				log.WarnContext(r.Context(), "web login refused",
					slog.String("username", user), slog.String("remote_addr", r.RemoteAddr))
			}
			w.Header().Set("WWW-Authenticate", `Basic realm="mcpjobs", charset="UTF-8"`)
			http.Error(w, "unauthorized: log in with WEB_USERNAME and WEB_PASSWORD", http.StatusUnauthorized)
			return
		}
		next.ServeHTTP(w, r)
	})
}
