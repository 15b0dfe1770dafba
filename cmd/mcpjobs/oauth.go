package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/mcpjobs/mcpjobs/internal/config"
	"github.com/mcpjobs/mcpjobs/internal/oauth"
	"github.com/mcpjobs/mcpjobs/mcp"
)

// oauthEnv are the environment variables of signing in with an identity
// provider (mcp and dev).
var oauthEnv = []string{"MCP_PUBLIC_URL", "MCP_OAUTH_ISSUER", "MCP_OAUTH_AUDIENCE", "MCP_OAUTH_IDENTITY_CLAIM", "MCP_OAUTH_REQUIRED_SCOPES"}

// oauthFlags are the flags over MCP_PUBLIC_URL and MCP_OAUTH_*.
type oauthFlags struct {
	issuer, audience, publicURL, claim, scopes *string
}

func (f *oauthFlags) register(fs *flag.FlagSet, cfg config.Config) {
	o := cfg.MCPOAuth
	f.issuer = fs.String("oauth-issuer", o.Issuer, "issuer URL of the identity provider HTTP callers sign in with (MCP_OAUTH_ISSUER; default: none)")
	f.audience = fs.String("oauth-audience", o.Audience, "audience access tokens must carry (MCP_OAUTH_AUDIENCE; default: the public URL)")
	f.publicURL = fs.String("public-url", cfg.MCPPublicURL, "this server's public URL of /mcp, the OAuth resource (MCP_PUBLIC_URL; default with an issuer on loopback: http://<addr>/mcp)")
	f.claim = fs.String("oauth-identity-claim", o.IdentityClaim, "access token claim naming the caller, e.g. email (MCP_OAUTH_IDENTITY_CLAIM; default: sub)")
	f.scopes = fs.String("oauth-required-scopes", strings.Join(o.RequiredScopes, ","), "scopes every access token must grant, comma-separated (MCP_OAUTH_REQUIRED_SCOPES; default: none)")
}

// build returns the OAuth options of an MCP server at addr, nil without an
// issuer. It fetches the provider's keys once, and only warns when that
// fails: tokens are checked once the provider answers.
func (f *oauthFlags) build(ctx context.Context, a *app, addr string) (*mcp.OAuth, error) {
	if *f.issuer == "" {
		return nil, nil
	}
	resource := *f.publicURL
	if resource == "" {
		if !isLoopback(addr) {
			return nil, fmt.Errorf("MCP_OAUTH_ISSUER is set but MCP_PUBLIC_URL is not: set it (or --public-url) to this server's public URL of /mcp, e.g. https://mcpjobs.example.com/mcp")
		}
		resource = "http://" + addr + "/mcp"
	}
	audience := *f.audience
	if audience == "" {
		audience = resource
	}
	log := a.log.With(slog.String("component", "oauth"))
	v, err := oauth.New(oauth.Config{
		Issuer:         *f.issuer,
		Audience:       audience,
		IdentityClaim:  *f.claim,
		RequiredScopes: config.SplitList(*f.scopes),
		Logger:         log,
	})
	if err != nil {
		return nil, err
	}
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	if err := v.Refresh(rctx); err != nil {
		log.Warn("identity provider not reachable now; access tokens are checked once it is", slog.Any("error", err))
	}
	a.log.Info("HTTP callers may sign in with the identity provider", slog.String("issuer", v.Issuer()),
		slog.String("resource", resource), slog.String("audience", audience), slog.Any("required_scopes", v.RequiredScopes()))
	return &mcp.OAuth{Verifier: v, Resource: resource}, nil
}
