// Package secrets stores an application's secrets in its own PostgreSQL
// database, encrypted and authenticated, scoped to a group and an owner.
//
// A [Keyring] holds the master keys: the current key seals every write, and
// previous keys still open what they sealed until rotation has moved every
// row to the current key. A [Store] is a scope over that keyring:
//
//	ring, err := secrets.KeyringFromEnv() // SECRETS_KEY, SECRETS_PREVIOUS_KEYS
//	store := secrets.New(ring)            // group "global", no owner
//	err = store.Set(ctx, pool, "smtp_password", "hunter2")
//	user := store.Model("users", 42)      // group "users", owner 42
//	err = user.Set(ctx, pool, "api_token", "tok_123")
//	token, err := secrets.GetAs[string](ctx, user, pool, "api_token")
//
// Values are any JSON that encoding/json can produce, and they come back
// exactly: numbers keep every digit, a stored null is not a missing secret.
//
// Every call takes a [DBTX], which a *pgxpool.Pool, a *pgx.Conn and a
// pgx.Tx all satisfy, so secrets can be written in the caller's
// transaction. A Store and a Keyring are immutable and safe for concurrent
// use. The package never logs, and no error or formatted value of its types
// contains a secret value or key material.
package secrets
