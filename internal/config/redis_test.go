package config_test

import (
	"strings"
	"testing"

	"github.com/mcpjobs/mcpjobs/internal/config"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

// TestRedisSettings reads REDIS_CA_FILE and REDIS_WAIT_REPLICAS, and
// refuses a replica count that is not a whole number of 0 or more.
func TestRedisSettings(t *testing.T) {
	c, err := config.FromEnv(env(map[string]string{"REDIS_CA_FILE": "/etc/ca.pem", "REDIS_WAIT_REPLICAS": " 2 "}))
	if err != nil || c.RedisCAFile != "/etc/ca.pem" || c.RedisWaitReplicas != 2 {
		t.Fatalf("FromEnv = %+v, %v; want REDIS_CA_FILE and 2 replicas", c, err)
	}
	if c, err := config.FromEnv(env(nil)); err != nil || c.RedisWaitReplicas != 0 || c.RedisCAFile != "" {
		t.Fatalf("FromEnv without them = %+v, %v; want the defaults", c, err)
	}
	for _, bad := range []string{"-1", "one", "1.5"} {
		_, err := config.FromEnv(env(map[string]string{"REDIS_WAIT_REPLICAS": bad}))
		if err == nil || !strings.Contains(err.Error(), "REDIS_WAIT_REPLICAS") {
			t.Errorf("REDIS_WAIT_REPLICAS=%s: %v; want an error naming it", bad, err)
		}
	}
}
