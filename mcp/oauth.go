package mcp

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"unicode"

	mcpserver "github.com/mark3labs/mcp-go/server"

	"github.com/mcpjobs/mcpjobs/internal/oauth"
)

// OIDCIdentityPrefix starts the identity of a caller signed in with the
// identity provider: "oidc:" and the value of the identity claim. Static
// token names (MCP_AUTH_TOKENS) cannot contain ":", so the two kinds never
// collide, and existing static identities keep owning their jobs.
const OIDCIdentityPrefix = "oidc:"

// OAuth makes HTTP MCP an OAuth 2.1 resource server, as the MCP
// authorization spec describes: Protected Resource Metadata (RFC 9728)
// names the identity provider, and bearer access tokens it issued are
// validated on every request.
type OAuth struct {
	// Verifier validates access tokens. Required.
	Verifier *oauth.Verifier
	// Resource is this server's public URL of /mcp (MCP_PUBLIC_URL), e.g.
	// https://mcpjobs.example.com/mcp: the resource identifier of the
	// metadata, and where the metadata's URL is derived from. Required.
	Resource string
}

// checkOAuth validates Options.OAuth.
func checkOAuth(o *OAuth) error {
	if o == nil {
		return nil
	}
	if o.Verifier == nil {
		return errors.New("mcp: Options.OAuth.Verifier is nil (create one with oauth.New)")
	}
	u, err := url.Parse(o.Resource)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.Fragment != "" {
		return fmt.Errorf("mcp: Options.OAuth.Resource %q is not an absolute http(s) URL (set MCP_PUBLIC_URL to this server's public URL of /mcp, e.g. https://mcpjobs.example.com/mcp)", o.Resource)
	}
	return nil
}

// HasOAuth reports whether HTTP callers may sign in with the identity
// provider.
func (s *Server) HasOAuth() bool { return s.opts.OAuth != nil }

// metadataPaths are the paths the Protected Resource Metadata is served
// at: the RFC 9728 path of the resource, the one of /mcp, and the root form
// that clients of earlier drafts ask for.
func (o *OAuth) metadataPaths() []string {
	paths := []string{mcpserver.ProtectedResourceMetadataPath(o.Resource)}
	for _, p := range []string{mcpserver.WellKnownProtectedResourcePath + "/mcp", mcpserver.WellKnownProtectedResourcePath} {
		if p != paths[0] {
			paths = append(paths, p)
		}
	}
	return paths
}

// metadataURL is the absolute URL of the resource's metadata, for
// WWW-Authenticate.
func (o *OAuth) metadataURL() string {
	u, _ := url.Parse(o.Resource) // checked in New
	return (&url.URL{Scheme: u.Scheme, Host: u.Host, Path: mcpserver.ProtectedResourceMetadataPath(o.Resource)}).String()
}

// handleMetadata registers the Protected Resource Metadata on mux.
func (o *OAuth) handleMetadata(mux *http.ServeMux) {
	h := mcpserver.NewProtectedResourceMetadataHandler(mcpserver.ProtectedResourceMetadataConfig{
		Resource:               o.Resource,
		AuthorizationServers:   []string{o.Verifier.Issuer()},
		ScopesSupported:        o.Verifier.RequiredScopes(),
		BearerMethodsSupported: []string{"header"},
		ResourceName:           "mcpjobs",
	})
	for _, p := range o.metadataPaths() {
		mux.Handle(p, h)
	}
}

// authenticate wraps next. Without static tokens and without OAuth, every
// request runs as LocalIdentity. Otherwise a request must carry
// "Authorization: Bearer <token>": a static token (MCP_AUTH_TOKENS) runs as
// its name, an access token of the identity provider as OIDCIdentityPrefix
// + its identity claim. Refused tokens are logged by fingerprint only.
func (s *Server) authenticate(next http.Handler) http.Handler {
	tokens, o := s.opts.Tokens, s.opts.OAuth
	as := func(w http.ResponseWriter, r *http.Request, name string) {
		next.ServeHTTP(w, r.WithContext(WithIdentity(r.Context(), name)))
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if tokens.Len() == 0 && o == nil {
			as(w, r, LocalIdentity)
			return
		}
		tok, ok := bearer(r.Header.Get("Authorization"))
		if ok && tokens.Len() > 0 {
			if name, valid := tokens.lookup(tok); valid {
				as(w, r, name)
				return
			}
		}
		if o == nil {
			if ok {
				s.log.WarnContext(r.Context(), "bearer token refused", slog.String("token", oauth.Fingerprint(tok)), slog.String("reason", "not one of MCP_AUTH_TOKENS"))
			}
			w.Header().Set("WWW-Authenticate", `Bearer realm="mcpjobs"`)
			http.Error(w, "unauthorized: send Authorization: Bearer <token> (one of MCP_AUTH_TOKENS)", http.StatusUnauthorized)
			return
		}
		if !ok {
			// The start of discovery: no error code (RFC 6750 section 3.1).
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="mcpjobs", resource_metadata=%q`, o.metadataURL()))
			http.Error(w, "unauthorized: sign in with the identity provider named at "+o.metadataURL()+" and send Authorization: Bearer <access token>", http.StatusUnauthorized)
			return
		}
		p, err := o.Verifier.Verify(r.Context(), tok)
		if err == nil {
			as(w, r, OIDCIdentityPrefix+p.Identity)
			return
		}
		s.log.WarnContext(r.Context(), "bearer token refused", slog.String("token", oauth.Fingerprint(tok)), slog.String("reason", err.Error()))
		desc := description(err)
		switch {
		case errors.Is(err, oauth.ErrInsufficientScope):
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="mcpjobs", error="insufficient_scope", error_description=%q, scope=%q, resource_metadata=%q`,
				desc, strings.Join(o.Verifier.RequiredScopes(), " "), o.metadataURL()))
			http.Error(w, "forbidden: "+desc, http.StatusForbidden)
		case errors.Is(err, oauth.ErrProviderUnavailable):
			w.Header().Set("Retry-After", "5")
			http.Error(w, "the identity provider cannot be reached to check the token; retry shortly", http.StatusServiceUnavailable)
		default:
			w.Header().Set("WWW-Authenticate", fmt.Sprintf(`Bearer realm="mcpjobs", error="invalid_token", error_description=%q, resource_metadata=%q`,
				desc, o.metadataURL()))
			http.Error(w, "unauthorized: "+desc+" (sign in again)", http.StatusUnauthorized)
		}
	})
}

// description is err's reason, fit for a quoted-string: printable ASCII
// without quotes or backslashes (RFC 6750 section 3).
func description(err error) string {
	msg := err.Error()
	for _, sentinel := range []error{oauth.ErrInvalidToken, oauth.ErrInsufficientScope} {
		msg = strings.TrimPrefix(msg, sentinel.Error()+": ")
	}
	return strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII || r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, msg)
}
