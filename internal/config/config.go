// Package config reads mcpjobs' configuration from the environment; the
// subcommands of cmd/mcpjobs bind flags over it.
package config

import (
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
)

// Config is everything the environment can set.
type Config struct {
	// RedisURL is REDIS_URL: redis://, rediss:// or redis-sentinel:// as
	// asynq parses them. Default: redis://127.0.0.1:6379 (dev: its own).
	RedisURL string
	// RedisCAFile is REDIS_CA_FILE: a PEM file of the certificate
	// authorities that a rediss:// server's certificate must chain to,
	// for a private CA. Default: "" (the system's roots).
	RedisCAFile string
	// RedisWaitReplicas is REDIS_WAIT_REPLICAS: how many Redis replicas
	// must acknowledge a new job (Redis WAIT) before its job_id is handed
	// out. Default: 0 (no wait).
	RedisWaitReplicas int
	// Intranet is how workers reach the platform.
	Intranet Intranet
	// MCPAuthTokens is MCP_AUTH_TOKENS (or the content of
	// MCP_AUTH_TOKENS_FILE): "name:token,name:token".
	MCPAuthTokens string
	// MCPPublicURL is MCP_PUBLIC_URL: this server's public URL of /mcp, e.g.
	// https://mcpjobs.example.com/mcp, the OAuth resource identifier.
	// Default: none (with MCP_OAUTH_ISSUER on a loopback address,
	// http://<addr>/mcp).
	MCPPublicURL string
	// MCPOAuth lets HTTP callers sign in with the identity provider.
	MCPOAuth MCPOAuth
	// Coverages is INTRANET_COVERAGES: the coverage IDs the aspect tool
	// offers, comma-separated; "*" accepts any. Default: the simulator's.
	Coverages []string
	// WebUsername and WebPassword (WEB_USERNAME, and WEB_PASSWORD or the
	// content of WEB_PASSWORD_FILE) guard the operator site. Default: none
	// (no login; web then binds loopback only).
	WebUsername, WebPassword string
	// LogLevel is LOG_LEVEL: debug, info, warn or error. Default: info.
	LogLevel slog.Level
	// LogFormat is LOG_FORMAT: text or json. Default: text on a terminal,
	// json otherwise.
	LogFormat string
}

// Intranet is the platform connection.
type Intranet struct {
	// BaseURL is INTRANET_BASE_URL.
	BaseURL string
	// AuthURL is INTRANET_AUTH_URL. Default: BaseURL + "/auth/token".
	AuthURL string
	// Username is INTRANET_USERNAME.
	Username string
	// Password is INTRANET_PASSWORD. Default: none.
	Password string
	// PasswordFile is INTRANET_PASSWORD_FILE, a file holding the password,
	// passed through to the client, which re-reads it at each auth call (so a
	// fixed file heals refused credentials without a restart). Ignored when
	// INTRANET_PASSWORD is set. Default: none.
	PasswordFile string
	// TokenPrefix is INTRANET_TOKEN_PREFIX, e.g. "Bearer ". Default: "".
	TokenPrefix string
}

// MCPOAuth is the identity provider that HTTP MCP callers sign in with.
type MCPOAuth struct {
	// Issuer is MCP_OAUTH_ISSUER, the provider's issuer URL. Default: none
	// (no sign-in with a provider).
	Issuer string
	// Audience is MCP_OAUTH_AUDIENCE, the value access tokens' "aud" must
	// contain. Default: MCP_PUBLIC_URL.
	Audience string
	// IdentityClaim is MCP_OAUTH_IDENTITY_CLAIM, the claim that names the
	// caller, e.g. email or preferred_username. Default: sub.
	IdentityClaim string
	// RequiredScopes is MCP_OAUTH_REQUIRED_SCOPES, scopes every access token
	// must grant, separated by commas or spaces. Default: none.
	RequiredScopes []string
}

// SplitList splits a list separated by commas or spaces, dropping empty
// items.
func SplitList(s string) []string {
	return strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' })
}

// Var documents one environment variable.
type Var struct {
	Name, Description string
}

// Vars lists the environment variables, for --help.
var Vars = []Var{
	{"REDIS_URL", "Redis URL (redis://, rediss://, redis-sentinel://)"},
	{"REDIS_CA_FILE", "PEM file of the CA(s) a rediss:// server's certificate must chain to (default: system roots)"},
	{"REDIS_WAIT_REPLICAS", "Redis replicas that must acknowledge a job before its job_id is handed out (default 0)"},
	{"INTRANET_BASE_URL", "platform base URL, e.g. http://127.0.0.1:8081"},
	{"INTRANET_AUTH_URL", "platform auth URL (default: base URL + /auth/token)"},
	{"INTRANET_USERNAME", "platform service account"},
	{"INTRANET_PASSWORD", "its password (or INTRANET_PASSWORD_FILE: a file holding it, re-read at each auth call)"},
	{"INTRANET_TOKEN_PREFIX", `text before the token in Authorization, e.g. "Bearer " (default none)`},
	{"INTRANET_COVERAGES", `coverage IDs the aspect tool offers, comma-separated, "*" for any`},
	{"MCP_AUTH_TOKENS", "HTTP bearer tokens, name:token,name:token (or MCP_AUTH_TOKENS_FILE)"},
	{"MCP_PUBLIC_URL", "this server's public URL of /mcp, the OAuth resource (default with MCP_OAUTH_ISSUER on loopback: http://<addr>/mcp)"},
	{"MCP_OAUTH_ISSUER", "issuer URL of the identity provider HTTP callers sign in with (default none)"},
	{"MCP_OAUTH_AUDIENCE", "audience access tokens must carry (default MCP_PUBLIC_URL)"},
	{"MCP_OAUTH_IDENTITY_CLAIM", "claim naming the caller, e.g. email (default sub)"},
	{"MCP_OAUTH_REQUIRED_SCOPES", "scopes every access token must grant, comma-separated (default none)"},
	{"WEB_USERNAME", "operator site user"},
	{"WEB_PASSWORD", "operator site password (or WEB_PASSWORD_FILE: a file holding it)"},
	{"LOG_LEVEL", "debug, info, warn, error (default info)"},
	{"LOG_FORMAT", "text or json (default: text on a terminal, else json)"},
}

// FromEnv reads the configuration through getenv (os.Getenv in main).
func FromEnv(getenv func(string) string) (Config, error) {
	c := Config{
		RedisURL:    getenv("REDIS_URL"),
		RedisCAFile: getenv("REDIS_CA_FILE"),
		Intranet: Intranet{
			BaseURL:     strings.TrimRight(getenv("INTRANET_BASE_URL"), "/"),
			AuthURL:     getenv("INTRANET_AUTH_URL"),
			Username:    getenv("INTRANET_USERNAME"),
			Password:    getenv("INTRANET_PASSWORD"),
			TokenPrefix: getenv("INTRANET_TOKEN_PREFIX"),
		},
		MCPAuthTokens: getenv("MCP_AUTH_TOKENS"),
		MCPPublicURL:  getenv("MCP_PUBLIC_URL"),
		MCPOAuth: MCPOAuth{
			Issuer:         getenv("MCP_OAUTH_ISSUER"),
			Audience:       getenv("MCP_OAUTH_AUDIENCE"),
			IdentityClaim:  getenv("MCP_OAUTH_IDENTITY_CLAIM"),
			RequiredScopes: SplitList(getenv("MCP_OAUTH_REQUIRED_SCOPES")),
		},
		WebUsername: getenv("WEB_USERNAME"),
		WebPassword: getenv("WEB_PASSWORD"),
		LogFormat:   strings.ToLower(getenv("LOG_FORMAT")),
	}
	var err error
	if v := getenv("REDIS_WAIT_REPLICAS"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return c, fmt.Errorf("config: REDIS_WAIT_REPLICAS %q: use a whole number of replicas, 0 or more", v)
		}
		c.RedisWaitReplicas = n
	}
	if c.Intranet.Password == "" {
		// Not read here: the client reads it at each auth call, and checks
		// at start that it can.
		c.Intranet.PasswordFile = getenv("INTRANET_PASSWORD_FILE")
	}
	if c.MCPAuthTokens, err = fromFile(c.MCPAuthTokens, getenv("MCP_AUTH_TOKENS_FILE"), "MCP_AUTH_TOKENS"); err != nil {
		return c, err
	}
	if c.WebPassword, err = fromFile(c.WebPassword, getenv("WEB_PASSWORD_FILE"), "WEB_PASSWORD"); err != nil {
		return c, err
	}
	for _, id := range strings.Split(getenv("INTRANET_COVERAGES"), ",") {
		if id = strings.TrimSpace(id); id != "" {
			c.Coverages = append(c.Coverages, id)
		}
	}
	if lvl := getenv("LOG_LEVEL"); lvl != "" {
		if err := c.LogLevel.UnmarshalText([]byte(lvl)); err != nil {
			return c, fmt.Errorf("config: LOG_LEVEL %q: use debug, info, warn or error", lvl)
		}
	}
	switch c.LogFormat {
	case "", "text", "json":
	default:
		return c, fmt.Errorf("config: LOG_FORMAT %q: use text or json", c.LogFormat)
	}
	return c, nil
}

// fromFile returns value, or the trimmed content of file when value is
// empty and file is set.
func fromFile(value, file, name string) (string, error) {
	if value != "" || file == "" {
		return value, nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("config: %s_FILE: %w", name, err)
	}
	return strings.TrimSpace(string(b)), nil
}
