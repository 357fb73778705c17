package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net/url"
	"os"
	"regexp"
	"strconv"
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
	raw, err := databaseURL()
	if err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		// pgx's message may quote a part of an unparsable URL; show ours.
		return nil, &exitError{
			code: exitUsage,
			err: fmt.Errorf("%s is not a valid connection string: %s",
				envDatabaseURL, redactURL(raw)),
			hint: "use the form postgres://user@host:5432/database?sslmode=disable",
		}
	}
	cfg.MaxConns = 4
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = connectTimeout
	}
	if _, ok := cfg.ConnConfig.RuntimeParams["application_name"]; !ok {
		cfg.ConnConfig.RuntimeParams["application_name"] = "sqlsecrets"
	}

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

// open returns the keyring and a database pool for a command that reads
// or writes secrets. The environment is checked in full before anything
// connects.
func open(ctx context.Context) (*secrets.Keyring, *pgxpool.Pool, error) {
	if _, err := databaseURL(); err != nil {
		return nil, nil, err
	}
	ring, err := keyring()
	if err != nil {
		return nil, nil, err
	}
	pool, err := connect(ctx)
	if err != nil {
		return nil, nil, err
	}
	return ring, pool, nil
}

// redactURL returns a connection string with its passwords replaced by
// "xxxxx", for messages. It handles postgres:// URLs, where the password
// can be in the user info or the password and sslpassword parameters, and
// key=value strings. A URL that does not parse is not shown at all.
func redactURL(s string) string {
	if !strings.HasPrefix(s, "postgres://") && !strings.HasPrefix(s, "postgresql://") {
		return kvSecret.ReplaceAllString(s, "${1}=xxxxx")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "(" + envDatabaseURL + " not shown: not a valid URL)"
	}
	if q := u.Query(); q.Has("password") || q.Has("sslpassword") {
		for _, k := range []string{"password", "sslpassword"} {
			if q.Has(k) {
				q.Set(k, "xxxxx")
			}
		}
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// kvSecret matches a password or sslpassword setting of a key=value
// connection string, with its value quoted or bare.
var kvSecret = regexp.MustCompile(`(?i)\b((?:ssl)?password)\s*=\s*(?:'(?:[^'\\]|\\.)*'?|[^\s]*)`)

// scopeFlags are the --group and --owner flags, which pick the scope of a
// secret.
type scopeFlags struct {
	group    string
	owner    int64
	hasOwner bool
}

// register adds --group and --owner to fs. A bad --owner records its
// error, with a hint, in c.flagErr.
func (sf *scopeFlags) register(c *cli, fs *flag.FlagSet) {
	fs.StringVar(&sf.group, "group", secrets.DefaultGroup, "group `G` of the secret")
	fs.Func("owner", "owner id `N`, a whole number 0 or more; leave out for no owner",
		func(s string) error {
			id, err := parseOwner(s)
			if err != nil {
				c.flagErr = usageError(fmt.Sprintf("invalid --owner %q: %v", s, err),
					"--owner takes a record id such as 42; leave it out for a secret with no owner")
				return err
			}
			sf.owner, sf.hasOwner = id, true
			return nil
		})
}

// store returns a store of ring for the scope the flags name.
func (sf *scopeFlags) store(ring *secrets.Keyring) secrets.Store {
	s := secrets.New(ring).Group(sf.group)
	if sf.hasOwner {
		s = s.Owner(sf.owner)
	}
	return s
}

// parseOwner parses an owner id: decimal digits only, so no sign, no
// spaces and no base prefix.
func parseOwner(s string) (int64, error) {
	if s == "" {
		return 0, errors.New("empty")
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, errors.New("not a whole number 0 or more")
		}
	}
	id, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, errors.New("too large")
	}
	return id, nil
}
