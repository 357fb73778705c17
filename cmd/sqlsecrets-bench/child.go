package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/rotation"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// childResult is what a child process prints, as one JSON object.
type childResult struct {
	Rotated int64   `json:"rotated"`
	Seconds float64 `json:"seconds"`
}

// runChild is the process whose peak RSS the parent measures. Mode
// "idle" connects and does nothing else, the baseline; mode "rotate"
// rotates every row of the benchmark's table with rotation.Rotate and its
// default options. Both take the keys from SECRETS_KEY and
// SECRETS_PREVIOUS_KEYS, as the parent sets them.
func runChild(ctx context.Context, mode string, stdout io.Writer) error {
	if mode != "idle" && mode != "rotate" {
		return fmt.Errorf("-child=%s: want idle or rotate", mode)
	}
	ring, err := secrets.KeyringFromEnv()
	if err != nil {
		return err
	}
	cfg, err := poolConfig()
	if err != nil {
		return err
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := pool.Ping(ctx); err != nil {
		return err
	}

	var res childResult
	if mode == "rotate" {
		start := time.Now()
		r, err := rotation.Rotate(ctx, pool, ring, rotation.Options{})
		if err != nil {
			return err
		}
		res = childResult{Rotated: r.Rotated, Seconds: time.Since(start).Seconds()}
	}
	return json.NewEncoder(stdout).Encode(res)
}
