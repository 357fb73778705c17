package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"path"
	"text/tabwriter"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/sqlsecrets/sqlsecrets/gen"
	"github.com/sqlsecrets/sqlsecrets/schema"
)

var migrateCommand = &command{
	name:     "migrate",
	synopsis: "[--force] [up|down|status]",
	summary:  "apply or roll back the secrets table migration, or show its status",
	help: `Migrate manages the secrets table in the database of DATABASE_URL, with
migrations built into the command. It needs no key.

  up      apply every migration not applied yet, and print each one
          (the default; safe to run at every deploy)
  down    roll back the latest migration. Rolling back the first one drops
          the secrets table and every secret in it, so down refuses while
          the table holds secrets, unless --force is given. The migration
          checks in the transaction of the DROP, so a secret set meanwhile
          is never lost; --force sets the session setting
          sqlsecrets.allow_drop to on, which lets it drop them
  status  print each migration, whether it is applied, and when

Migrations hold a PostgreSQL advisory lock, so two runs at once take turns,
and record their versions in a table of their own (` + schema.VersionTable + `).
`,
	run: runMigrate,
}

// allowDropSetting is the session setting that lets the down migration
// drop the secrets table while it holds rows; migrate --force down sets it
// to "on", and migrate down without --force to "off".
const allowDropSetting = "sqlsecrets.allow_drop"

func runMigrate(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet()
	force := fs.Bool("force", false, "let down drop the secrets table while it holds secrets")
	rest, err := c.parse(fs, args, "the action", 1)
	if err != nil {
		return err
	}
	action := "up"
	switch len(rest) {
	case 0:
	case 1:
		action = rest[0]
	default:
		return usageError("migrate takes at most one action", c.helpHint())
	}
	if action != "up" && action != "down" && action != "status" {
		return usageError(fmt.Sprintf("unknown migrate action: argument %d is not up, down or status",
			len(args)), "the actions are up, down and status")
	}

	var params map[string]string
	if action == "down" {
		// The down migration drops a table that holds rows only when the
		// session allows it. Say so either way, over DATABASE_URL.
		params = map[string]string{allowDropSetting: "off"}
		if *force {
			params[allowDropSetting] = "on"
		}
	}
	pool, err := connectWith(ctx, params, defaultConns)
	if err != nil {
		return err
	}
	defer pool.Close()
	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()

	switch action {
	case "down":
		return c.migrateDown(ctx, pool, db)
	case "status":
		st, err := schema.Status(ctx, db)
		if err != nil {
			return err
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
		for _, s := range st {
			at := "-"
			if !s.AppliedAt.IsZero() {
				at = s.AppliedAt.UTC().Format(time.RFC3339)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\n", s.State, at, path.Base(s.Source.Path))
		}
		return tw.Flush()
	}

	res, err := schema.Up(ctx, db)
	for _, r := range res {
		if r.Error == nil {
			fmt.Fprintf(c.stdout, "applied %s (%s)\n", path.Base(r.Source.Path),
				r.Duration.Round(time.Millisecond))
		}
	}
	if err != nil {
		return err
	}
	if len(res) == 0 {
		fmt.Fprintln(c.stdout, "nothing to apply: the schema is up to date")
	}
	return nil
}

// migrateDown rolls back the latest migration. The migration itself
// refuses to drop a table that holds secrets, in the transaction of the
// DROP, unless the session allows it (allowDropSetting, which runMigrate
// sets from --force), so no secret written meanwhile is lost.
func (c *cli) migrateDown(ctx context.Context, pool *pgxpool.Pool, db *sql.DB) error {
	r, err := schema.Down(ctx, db)
	switch {
	case errors.Is(err, goose.ErrNoNextVersion):
		fmt.Fprintln(c.stdout, "nothing to roll back: no migration is applied")
		return nil
	case refusedDrop(err):
		what := "secrets"
		if n, err := gen.New(pool).CountSecrets(ctx); err == nil {
			what = plural(n, "secret") // for the message only: the migration decided
		}
		return withHint(
			fmt.Errorf("the secrets table holds %s; migrate down would drop them all", what),
			"copy them elsewhere first if you need them, "+
				"then run 'sqlsecrets migrate --force down'")
	case err != nil:
		return err
	}
	fmt.Fprintf(c.stdout, "rolled back %s (%s)\n", path.Base(r.Source.Path),
		r.Duration.Round(time.Millisecond))
	return nil
}

// refusedDrop reports whether err is the down migration refusing to drop
// a table that holds secrets.
func refusedDrop(err error) bool { return errors.Is(err, schema.ErrNotEmpty) }
