package secrets_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"

	"github.com/sqlsecrets/sqlsecrets/internal/pgtest"
	"github.com/sqlsecrets/sqlsecrets/schema"
	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// connect is what the database examples use in place of an application's
// own pool: it opens a pool on a fresh schema holding the secrets table,
// on the server of DATABASE_URL (or pgtest.DefaultURL), and returns it with
// a function that drops the schema. Examples cannot skip, so without a
// server they fail; run them as the tests are run:
//
//	./scripts/with-postgres go test ./secrets/
func connect() (*pgxpool.Pool, func()) {
	ctx := context.Background()
	base := os.Getenv("DATABASE_URL")
	if base == "" {
		base = pgtest.DefaultURL
	}
	name := pgtest.SchemaName("Example")
	admin := func(sql string) {
		conn, err := pgx.Connect(ctx, base)
		if err != nil {
			log.Panicf("example needs PostgreSQL at %s: %v", pgtest.Redact(base), err)
		}
		defer conn.Close(ctx)
		if _, err := conn.Exec(ctx, sql); err != nil {
			log.Panicf("example database: %v", err)
		}
	}
	admin("CREATE SCHEMA " + pgx.Identifier{name}.Sanitize())
	drop := func() { admin("DROP SCHEMA IF EXISTS " + pgx.Identifier{name}.Sanitize() + " CASCADE") }

	cfg, err := pgxpool.ParseConfig(base)
	if err != nil {
		drop()
		log.Panicf("example database: DATABASE_URL is not a valid connection string")
	}
	cfg.ConnConfig.RuntimeParams["search_path"] = name
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		drop()
		log.Panicf("example database: %v", err)
	}
	db := stdlib.OpenDBFromPool(pool)
	_, err = schema.Up(ctx, db)
	db.Close()
	if err != nil {
		pool.Close()
		drop()
		log.Panicf("example database: migrating: %v", err)
	}
	return pool, func() { pool.Close(); drop() }
}

// newExampleRing returns a keyring with one new key. An application reads
// its keys with KeyringFromEnv instead.
func newExampleRing() *secrets.Keyring {
	key, err := secrets.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	ring, err := secrets.NewKeyring(key)
	if err != nil {
		log.Fatal(err)
	}
	return ring
}

// setenv sets environment variables and returns a function that restores
// them.
func setenv(vars map[string]string) func() {
	var undo []func()
	for k, v := range vars {
		old, had := os.LookupEnv(k)
		os.Setenv(k, v)
		undo = append(undo, func() {
			if had {
				os.Setenv(k, old)
			} else {
				os.Unsetenv(k)
			}
		})
	}
	return func() {
		for _, u := range undo {
			u()
		}
	}
}

func ExampleNew() {
	key, err := secrets.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	ring, err := secrets.NewKeyring(key)
	if err != nil {
		log.Fatal(err)
	}

	store := secrets.New(ring)
	fmt.Println(store)
	fmt.Println(store.Group("billing"))
	fmt.Println(store.Model("users", 42))
	fmt.Println(store.Model("users", 42).NoOwner())

	// A keyring never prints its keys.
	fmt.Println(ring)
	// Output:
	// global
	// billing
	// users/42
	// users
	// secrets.Keyring(1 key, redacted)
}

func ExampleStore_Set() {
	pool, done := connect()
	defer done()
	ctx := context.Background()
	store := secrets.New(newExampleRing())

	if err := store.Set(ctx, pool, "smtp_password", "hunter2"); err != nil {
		log.Fatal(err)
	}
	// Setting again replaces the value.
	if err := store.Set(ctx, pool, "smtp_password", "correct horse"); err != nil {
		log.Fatal(err)
	}
	// Any value encoding/json accepts.
	err := store.Set(ctx, pool, "oauth", map[string]any{"client_id": "app-1", "scopes": []string{"read"}})
	if err != nil {
		log.Fatal(err)
	}

	v, err := store.Get(ctx, pool, "smtp_password")
	if err != nil {
		log.Fatal(err)
	}
	// Compare values; do not print them.
	fmt.Println("replaced:", v == "correct horse")
	// Output:
	// replaced: true
}

func ExampleStore_Get() {
	pool, done := connect()
	defer done()
	ctx := context.Background()
	store := secrets.New(newExampleRing()).Model("users", 42)

	if err := store.Set(ctx, pool, "limit", uint64(12345678901234567890)); err != nil {
		log.Fatal(err)
	}
	if err := store.Set(ctx, pool, "nothing", nil); err != nil {
		log.Fatal(err)
	}

	// Numbers keep every digit.
	v, err := store.Get(ctx, pool, "limit")
	n, ok := v.(json.Number)
	fmt.Printf("%T %v %v\n", v, ok && n.String() == "12345678901234567890", err)

	// A stored null is not an error...
	v, err = store.Get(ctx, pool, "nothing")
	fmt.Println(v, err)

	// ...a missing secret is.
	_, err = store.Get(ctx, pool, "api_token")
	fmt.Println(err)
	fmt.Println(errors.Is(err, secrets.ErrNotFound))
	// Output:
	// json.Number true <nil>
	// <nil> <nil>
	// get users/42 "api_token": secret not found
	// true
}

func ExampleStore_GetJSON() {
	pool, done := connect()
	defer done()
	ctx := context.Background()
	store := secrets.New(newExampleRing())

	err := store.Set(ctx, pool, "service", map[string]any{"port": 5432, "ratio": 3.25, "tags": []string{}})
	if err != nil {
		log.Fatal(err)
	}
	text, err := store.GetJSON(ctx, pool, "service")
	if err != nil {
		log.Fatal(err)
	}
	// The text is compact JSON, numbers exactly as they were written.
	fmt.Println(string(text) == `{"port":5432,"ratio":3.25,"tags":[]}`)
	// Output:
	// true
}

func ExampleGetAs() {
	pool, done := connect()
	defer done()
	ctx := context.Background()
	store := secrets.New(newExampleRing()).Group("integrations")

	type credentials struct {
		ClientID string   `json:"client_id"`
		Scopes   []string `json:"scopes"`
	}
	err := store.Set(ctx, pool, "github", credentials{ClientID: "app-1", Scopes: []string{"repo", "user"}})
	if err != nil {
		log.Fatal(err)
	}

	c, err := secrets.GetAs[credentials](ctx, store, pool, "github")
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(c.ClientID == "app-1", len(c.Scopes))
	// Output:
	// true 2
}

func ExampleStore_Model() {
	pool, done := connect()
	defer done()
	ctx := context.Background()
	store := secrets.New(newExampleRing())

	// Each user's token lives in its own scope; 0 is an owner like any
	// other, and the scope with no owner is a separate one again.
	for _, id := range []int64{0, 1, 2} {
		if err := store.Model("users", id).Set(ctx, pool, "api_token", fmt.Sprint("token-", id)); err != nil {
			log.Fatal(err)
		}
	}
	for _, id := range []int64{2, 0} {
		v, err := secrets.GetAs[string](ctx, store.Model("users", id), pool, "api_token")
		fmt.Println(id, v == fmt.Sprint("token-", id), err)
	}
	_, err := store.Group("users").Get(ctx, pool, "api_token")
	fmt.Println(err)
	// Output:
	// 2 true <nil>
	// 0 true <nil>
	// get users "api_token": secret not found
}

func ExampleStore_List() {
	pool, done := connect()
	defer done()
	ctx := context.Background()
	store := secrets.New(newExampleRing()).Model("users", 7)

	for _, k := range []string{"webhook_secret", "api_token"} {
		if err := store.Set(ctx, pool, k, "v"); err != nil {
			log.Fatal(err)
		}
	}
	infos, err := store.List(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	for _, in := range infos {
		fmt.Println(in.Name)
	}
	// Output:
	// users/7 "api_token"
	// users/7 "webhook_secret"
}

func ExampleKeyringFromEnv() {
	// A deployment sets SECRETS_KEY and, while rotating, the old keys in
	// SECRETS_PREVIOUS_KEYS; this example sets them itself.
	current, _ := secrets.GenerateKey()
	previous, _ := secrets.GenerateKey()
	restore := setenv(map[string]string{
		secrets.EnvKey:          current,
		secrets.EnvPreviousKeys: previous,
	})
	defer restore()

	ring, err := secrets.KeyringFromEnv()
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(ring)

	// Errors name the variable and the entry, never the key.
	os.Setenv(secrets.EnvPreviousKeys, previous+",not-a-key")
	_, err = secrets.KeyringFromEnv()
	fmt.Println(errors.Is(err, secrets.ErrInvalidKey), strings.HasPrefix(err.Error(), "SECRETS_PREVIOUS_KEYS entry 2"))
	// Output:
	// secrets.Keyring(2 keys, redacted)
	// true true
}

func ExampleGenerateKey() {
	key, err := secrets.GenerateKey()
	if err != nil {
		log.Fatal(err)
	}
	// Store key where the application's SECRETS_KEY comes from; do not
	// print or log it.
	if _, err := secrets.NewKeyring(key); err != nil {
		log.Fatal(err)
	}
	fmt.Println(strings.HasPrefix(key, "base64:"), len(key))
	// Output:
	// true 51
}

func ExampleSetMany() {
	pool, done := connect()
	defer done()
	ctx := context.Background()
	ring := newExampleRing()

	owner := int64(42)
	err := secrets.SetMany(ctx, pool, ring, []secrets.Entry{
		{Name: secrets.Name{Group: "global", Key: "smtp_password"}, Value: "hunter2"},
		{Name: secrets.Name{Group: "users", Owner: &owner, Key: "api_token"}, Value: "tok-42"},
		{Name: secrets.Name{Group: "users", Owner: &owner, Key: "api_token"}, Value: "tok-42b"}, // last wins
	})
	if err != nil {
		log.Fatal(err)
	}

	// An invalid entry fails the whole call before anything is written.
	err = secrets.SetMany(ctx, pool, ring, []secrets.Entry{
		{Name: secrets.Name{Group: "global", Key: "ok"}, Value: 1},
		{Name: secrets.Name{Group: "global", Key: ""}, Value: 2},
	})
	var ie *secrets.IndexError
	fmt.Println(errors.As(err, &ie), ie.Index, errors.Is(err, secrets.ErrInvalidArgument))

	all, err := secrets.ListAll(ctx, pool)
	if err != nil {
		log.Fatal(err)
	}
	for _, in := range all {
		fmt.Println(in.Name)
	}
	v, _ := secrets.GetAs[string](ctx, secrets.New(ring).Model("users", 42), pool, "api_token")
	fmt.Println("last entry won:", v == "tok-42b")
	// Output:
	// true 1 true
	// global "smtp_password"
	// users/42 "api_token"
	// last entry won: true
}
