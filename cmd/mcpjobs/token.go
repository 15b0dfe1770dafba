package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"text/tabwriter"
	"time"

	"github.com/mcpjobs/mcpjobs/worker/intranet"
	"github.com/mcpjobs/mcpjobs/worker/token"
)

var tokenEnv = []string{"REDIS_URL", "REDIS_CA_FILE", "INTRANET_BASE_URL", "INTRANET_AUTH_URL", "INTRANET_USERNAME", "INTRANET_PASSWORD", "INTRANET_TOKEN_PREFIX"}

// runToken is the operator view of the shared token: status, or a forced
// refresh through the same lock the workers use.
func runToken(ctx context.Context, a *app, args []string) error {
	fs := a.flagSet("status|refresh [flags]", tokenEnv...)
	asJSON := fs.Bool("json", false, "print JSON")
	redisURL := fs.String("redis-url", orDefault(a.cfg.RedisURL, defaultRedisURL), "Redis URL (REDIS_URL)")
	registerIntranetFlags(fs, &a.cfg.Intranet)
	if len(args) == 0 || (args[0] != "status" && args[0] != "refresh") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			fs.Usage()
			return nil
		}
		fs.Usage()
		return errUsage
	}
	action := args[0]
	if err := parse(fs, args[1:]); err != nil {
		return err
	}
	rdb, err := openRedis(ctx, a.redisURL(*redisURL), a.cfg.RedisCAFile)
	if err != nil {
		return err
	}
	defer rdb.Close()
	if action == "refresh" {
		ic := a.cfg.Intranet
		client, err := intranet.New(intranet.Config{BaseURL: ic.BaseURL, AuthURL: ic.AuthURL, Username: ic.Username,
			Password: ic.Password, PasswordFile: ic.PasswordFile, TokenPrefix: ic.TokenPrefix, Logger: a.log.With(slog.String("component", "intranet"))})
		if err != nil {
			return err
		}
		shared, err := token.New(token.Config{Redis: rdb, Auth: client, Logger: a.log, Replica: "mcpjobs-token-cli"})
		if err != nil {
			return err
		}
		defer shared.Close()
		if _, err := shared.ForceRefresh(ctx); err != nil {
			return fmt.Errorf("refresh: %w", err)
		}
	}
	st, err := token.ReadStatus(ctx, rdb, "", time.Now())
	if err != nil {
		return err
	}
	if *asJSON {
		enc := json.NewEncoder(a.stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(st)
	}
	tw := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s\t%s\n", k, v)
		}
	}
	row("fingerprint", st.Fingerprint)
	row("generation", fmt.Sprint(st.Generation))
	row("credentials", st.Credentials)
	if st.ExpiresAt != nil {
		row("expires in", st.ExpiresIn+"  ("+st.ExpiresAt.Format(time.RFC3339)+")")
	}
	if st.RefreshedAt != nil {
		row("refreshed", "by "+st.RefreshedBy+" at "+st.RefreshedAt.Format(time.RFC3339))
	}
	row("refresh lock", st.LockHeldBy)
	for _, c := range st.Cooldowns {
		row("auth cooldown", c.Remaining+"  credentials "+c.Credentials+", "+c.Kind+"  (last failure: "+c.Reason+")")
	}
	return tw.Flush()
}
