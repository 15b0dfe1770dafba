//go:build tools

package tools
import (
 _ "github.com/hibiken/asynq"
 _ "github.com/redis/go-redis/v9"
 _ "github.com/mark3labs/mcp-go/server"
 _ "github.com/alicebob/miniredis/v2"
 _ "golang.org/x/sync/singleflight"
 _ "github.com/google/uuid"
 _ "github.com/compose-spec/compose-go/v2/loader"
)
