package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

// This file reads the environment: the database to connect to, the
// keyring, and the scope flags that set, get, delete and list share.

const envDatabaseURL = "DATABASE_URL"

// connectTimeout bounds connecting to the database when DATABASE_URL does
// not set connect_timeout itself.
const connectTimeout = 10 * time.Second

// databaseURL returns DATABASE_URL, or a usage error when it is not set.
func databaseURL() (string, error) {
	u := os.Getenv(envDatabaseURL)
	if u == "" {
		return "", &exitError{
			code: exitUsage,
			err:  errors.New(envDatabaseURL + " is not set"),
			hint: "set " + envDatabaseURL +
				" to the PostgreSQL connection URL, e.g. postgres://app@localhost:5432/app",
		}
	}
	return u, nil
}

// keyring builds the keyring from SECRETS_KEY and SECRETS_PREVIOUS_KEYS.
// A missing or invalid key is a usage error; the error names the variable
// and, for SECRETS_PREVIOUS_KEYS, the entry, but never shows a key.
func keyring() (*secrets.Keyring, error) {
	if os.Getenv(secrets.EnvKey) == "" {
		return nil, &exitError{
			code: exitUsage,
			err:  errors.New(secrets.EnvKey + " is not set"),
			hint: "make a key with 'sqlsecrets keygen' and put it in " + secrets.EnvKey +
				"; keep the key that sealed your secrets, or they cannot be read",
		}
	}
	ring, err := secrets.KeyringFromEnv()
	if errors.Is(err, secrets.ErrInvalidArgument) {
		return nil, &exitError{
			code: exitUsage,
			err:  err,
			hint: secrets.EnvReadLegacy + " is true or false; leave it unset unless you are " +
				"adopting a table of the PHP original",
		}
	}
	if errors.Is(err, secrets.ErrDuplicateKey) {
		return nil, &exitError{
			code: exitUsage,
			err:  err,
			hint: "each key goes in once: " + secrets.EnvPreviousKeys +
				" holds only keys other than " + secrets.EnvKey,
		}
	}
	if err != nil {
		return nil, &exitError{
			code: exitUsage,
			err:  err,
			hint: "a key is base64: and 32 bytes in base64 (as 'sqlsecrets keygen' prints), " +
				"64 hex characters, or 32 raw bytes; " + secrets.EnvPreviousKeys +
				" separates keys with commas, without spaces",
		}
	}
	return ring, nil
}

// connect checks DATABASE_URL and opens a small pool on it, having made
// sure that the server answers. The caller closes the pool.
func connect(ctx context.Context) (*pgxpool.Pool, error) {
	return connectWith(ctx, nil, defaultConns)
}

// defaultConns is the size of the pool of a command without workers.
const defaultConns = 4

// connectWith is connect with run-time parameters that every connection
// of the pool sends in its startup packet, over those of DATABASE_URL:
// the server applies them when the session starts, as if it ran SET.
func connectWith(ctx context.Context, params map[string]string, conns int) (*pgxpool.Pool, error) {
	raw, err := databaseURL()
	if err != nil {
		return nil, err
	}
	cfg, err := poolConfig(raw, params)
	if err != nil {
		return nil, err
	}
	cfg.MaxConns = int32(max(conns, defaultConns))

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err == nil {
		err = pool.Ping(ctx)
		if err != nil {
			pool.Close()
		}
	}
	if err != nil {
		return nil, withHint(
			fmt.Errorf("cannot connect to %s: %w", redactURL(raw), err),
			"check "+envDatabaseURL+" and that the server is running")
	}
	return pool, nil
}

// poolConfig parses the connection string raw into the configuration
// connect uses, with params added to the run-time parameters. A string
// that does not parse is not shown at all: where it goes wrong, the
// parts are not known, and any of them could be a password.
func poolConfig(raw string, params map[string]string) (*pgxpool.Config, error) {
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		return nil, &exitError{
			code: exitUsage,
			err:  errors.New(envDatabaseURL + " is not a valid connection string (not shown)"),
			hint: "use the form postgres://user@host:5432/database?sslmode=disable, or " +
				"host=... user=... dbname=...; check the scheme, the port and the parameters",
		}
	}
	cfg.MaxConns = defaultConns
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "sqlsecrets"
	}
	for k, v := range params {
		cfg.ConnConfig.RuntimeParams[k] = v
	}
	return cfg, nil
}

// open returns the keyring and a database pool for a command that reads
// or writes secrets. The environment is checked in full before anything
// connects.
func open(ctx context.Context) (*secrets.Keyring, *pgxpool.Pool, error) {
	return openConns(ctx, defaultConns)
}

// runConns is the size of the pool of a rotate or verify with workers
// workers: one connection each, and one more for what the run does
// besides; without workers, three, on which rotation.Rotate reads ahead
// and writes two batches at once.
func runConns(workers int) int {
	if workers == 0 {
		return 3
	}
	return workers + 1
}

// openConns is open with a pool of up to conns connections.
func openConns(ctx context.Context, conns int) (*secrets.Keyring, *pgxpool.Pool, error) {
	if _, err := databaseURL(); err != nil {
		return nil, nil, err
	}
	ring, err := keyring()
	if err != nil {
		return nil, nil, err
	}
	pool, err := connectWith(ctx, nil, conns)
	if err != nil {
		return nil, nil, err
	}
	return ring, pool, nil
}

// redactURL returns a connection string that parsed, for messages, with
// every password replaced by "xxxxx": in a URL of any scheme, the password
// of the user info and the value of every query parameter named password
// or sslpassword, in any case; in a key=value string, the value of those
// keys. A URL that Go does not parse is not shown at all.
func redactURL(s string) string {
	if !urlScheme.MatchString(s) {
		return kvSecret.ReplaceAllString(s, "${1}=xxxxx")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(" + envDatabaseURL + " not shown: not a valid URL)"
	}
	if u.RawQuery != "" {
		parts := strings.Split(u.RawQuery, "&")
		for i, p := range parts {
			name, _, _ := strings.Cut(p, "=")
			if n, err := url.QueryUnescape(name); err != nil || secretParam(n) {
				parts[i] = name + "=xxxxx"
			}
		}
		u.RawQuery = strings.Join(parts, "&")
	}
	return u.Redacted()
}

// secretParam reports whether a connection parameter named name holds a
// secret. sslkey, sslcert and passfile hold paths to files, which are not.
func secretParam(name string) bool {
	return strings.EqualFold(name, "password") || strings.EqualFold(name, "sslpassword")
}

// urlScheme matches the start of a URL: a scheme, in any case, and "://".
var urlScheme = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*://`)

// kvSecret matches a password or sslpassword setting of a key=value
// connection string, in any case, with its value quoted or bare, and
// backslash escapes in either.
var kvSecret = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*(?:'(?:[^'\\]|\\.)*'?|(?:\\.|[^\s\\])*\\?)`)

// scopeFlags are the --group and --owner flags, which pick the scope of a
// secret.
type scopeFlags struct {
	group string
	owner ownerFlag
}

// register adds --group and --owner to fs.
func (sf *scopeFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&sf.group, "group", secrets.DefaultGroup, "group `G` of the secret")
	fs.Var(&sf.owner, "owner", "owner id `N`, a whole number 0 or more; leave out for no owner")
}

// store returns a store of ring for the scope the flags name.
func (sf *scopeFlags) store(ring *secrets.Keyring) secrets.Store {
	s := secrets.New(ring).Group(sf.group)
	if sf.owner.set {
		s = s.Owner(sf.owner.id)
	}
	return s
}
