package server

import (
	"context"
	"errors"
)

func openRedis(ctx context.Context, cfg *Config, d *Deps) error {
	return errors.New("SPECGUARD_REDIS_URL: the Redis store is not built yet")
}
