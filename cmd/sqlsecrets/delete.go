package main

import (
	"context"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

var deleteCommand = &command{
	name:     "delete",
	synopsis: "[--group G] [--owner N] KEY",
	summary:  "remove a secret",
	help: `Delete removes the secret stored under KEY in the scope of --group and
--owner. Without --owner it removes only the secret that has no owner, never
one of an owner's. It needs no SECRETS_KEY. It prints nothing when it
succeeds; when there is no such secret, it says so and exits with status 3.
`,
	run: runDelete,
}

func runDelete(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet()
	var sf scopeFlags
	sf.register(fs)
	key, err := c.parseKey(fs, args)
	if err != nil {
		return err
	}

	pool, err := connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	store := sf.store(nil) // deleting decrypts nothing
	deleted, err := store.Delete(ctx, pool, key)
	if err != nil {
		return c.asUsage(err)
	}
	if !deleted {
		return &secrets.OpError{Op: "delete", Name: store.Name(key), Err: secrets.ErrNotFound}
	}
	return nil
}
