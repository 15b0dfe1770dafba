package simulator

import (
	"flag"
	"fmt"
	"strconv"
	"time"
)

// RegisterFlags binds a flag for every setting of cfg to fs. A field of cfg
// that is already set becomes the flag's default; otherwise the default is
// New's. Parsing fs writes into cfg; New validates the result.
//
// Flags: --username, --password (one account; default the single default
// account), --token-ttl, --token-prefix, --latency, --auth-latency,
// --batch-duration, --fault-5xx, --fault-429, --fault-busy,
// --fault-rate-limited, --fault-drop, --fault-lost-reply, --auth-down, --seed.
func RegisterFlags(fs *flag.FlagSet, cfg *Config) {
	acct := &accountFlags{cfg: cfg, user: DefaultUsername, pass: DefaultPassword}
	if len(cfg.Accounts) == 1 {
		for u, p := range cfg.Accounts {
			acct.user, acct.pass = u, p
		}
	}
	fs.Var(&accountFlag{a: acct, user: true}, "username", "the account's username that the auth endpoint accepts")
	fs.Var(&accountFlag{a: acct}, "password", "the account's password that the auth endpoint accepts")

	durationVar(fs, &cfg.TokenTTL, "token-ttl", DefaultTokenTTL, "lifetime of an issued token (expires_in)")
	fs.StringVar(&cfg.TokenPrefix, "token-prefix", cfg.TokenPrefix, `prefix expected before the token in Authorization, e.g. "Bearer " (a bare token is accepted too)`)
	durationVar(fs, &cfg.Latency, "latency", 0, "delay added to every /api call")
	durationVar(fs, &cfg.AuthLatency, "auth-latency", 0, "delay added to every auth call")
	durationVar(fs, &cfg.BatchDuration, "batch-duration", DefaultBatchDuration, "time a batch task takes from QUEUED to its final state")

	f := &cfg.Faults
	fs.Var((*probFlag)(&f.HTTP5xx), "fault-5xx", "probability (0-1) that an /api call gets a gateway 502/503/504")
	fs.Var((*probFlag)(&f.HTTP429), "fault-429", "probability (0-1) that an /api call gets a gateway 429 with Retry-After: 1")
	fs.Var((*probFlag)(&f.Busy), "fault-busy", "probability (0-1) that an /api call is answered code 50300 (busy)")
	fs.Var((*probFlag)(&f.RateLimited), "fault-rate-limited", "probability (0-1) that an /api call is answered code 42900 (rate limited)")
	fs.Var((*probFlag)(&f.Drop), "fault-drop", "probability (0-1) that an /api call's connection is closed before it is processed")
	fs.Var((*probFlag)(&f.LostReply), "fault-lost-reply", "probability (0-1) that an /api call is processed, then its connection closed without an answer")
	fs.BoolVar(&f.AuthDown, "auth-down", f.AuthDown, "make the auth endpoint answer HTTP 503")
	fs.Uint64Var(&cfg.Seed, "seed", cfg.Seed, "seed of the fault randomness (0: from the time)")
}

// durationVar binds a duration flag whose default is *p when set, else def.
func durationVar(fs *flag.FlagSet, p *time.Duration, name string, def time.Duration, usage string) {
	if *p != 0 {
		def = *p
	}
	fs.DurationVar(p, name, def, usage)
}

// accountFlags holds the --username and --password values and writes them
// into cfg.Accounts as one account whenever either is set.
type accountFlags struct {
	cfg        *Config
	user, pass string
}

// accountFlag is --username (user) or --password.
type accountFlag struct {
	a    *accountFlags
	user bool
}

func (f *accountFlag) String() string {
	if f == nil || f.a == nil {
		return ""
	}
	if f.user {
		return f.a.user
	}
	return f.a.pass
}

func (f *accountFlag) Set(v string) error {
	if v == "" {
		return fmt.Errorf("must not be empty")
	}
	if f.user {
		f.a.user = v
	} else {
		f.a.pass = v
	}
	f.a.cfg.Accounts = map[string]string{f.a.user: f.a.pass}
	return nil
}

// probFlag is a probability flag: a number from 0 to 1.
type probFlag float64

func (p *probFlag) String() string {
	if p == nil {
		return "0"
	}
	return strconv.FormatFloat(float64(*p), 'g', -1, 64)
}

func (p *probFlag) Set(v string) error {
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f >= 0 && f <= 1) {
		return fmt.Errorf("%q is not a probability (use a number from 0 to 1, e.g. 0.05)", v)
	}
	*p = probFlag(f)
	return nil
}
