package main

import (
	"context"
	"flag"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/sqlsecrets/sqlsecrets/secrets"
)

var listCommand = &command{
	name:     "list",
	synopsis: "[--group G] [--owner N] [--all] [--json]",
	summary:  "list secrets by scope and key, with their times, never values",
	help: `List prints the secrets of the scope of --group and --owner, or of every
scope with --all: their group, owner, key and when they were created and
last updated. It never prints or decrypts a value, so it needs no key, only
DATABASE_URL.

The default output is a table. With --json it is one JSON array of objects
{"id":N,"group":"...","owner":N|null,"key":"...","created_at":"...",
"updated_at":"..."}, with times in RFC 3339 and UTC.
`,
	run: runList,
}

// listEntry is one secret in the output of list --json.
type listEntry struct {
	ID        int64  `json:"id"`
	Group     string `json:"group"`
	Owner     *int64 `json:"owner"`
	Key       string `json:"key"`
	CreatedAt string `json:"created_at"`
	UpdatedAt string `json:"updated_at"`
}

func runList(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet()
	var sf scopeFlags
	sf.register(fs)
	all := fs.Bool("all", false, "list every scope; not with --group or --owner")
	asJSON := fs.Bool("json", false, "print a JSON array instead of a table")
	rest, err := c.parse(fs, args, "", 1)
	if err != nil {
		return err
	}
	if err := c.noArgs(rest); err != nil {
		return err
	}
	if *all {
		scoped := false
		fs.Visit(func(f *flag.Flag) { scoped = scoped || f.Name == "group" || f.Name == "owner" })
		if scoped {
			return usageError(
				"--all lists every scope; it cannot be combined with --group or --owner",
				"leave out --all to list one scope")
		}
	}

	pool, err := connect(ctx)
	if err != nil {
		return err
	}
	defer pool.Close()
	var infos []secrets.Info
	if *all {
		infos, err = secrets.ListAll(ctx, pool)
	} else {
		infos, err = sf.list(ctx, pool)
	}
	if err != nil {
		return c.asUsage(err)
	}

	if *asJSON {
		out := make([]listEntry, len(infos))
		for i, in := range infos {
			out[i] = listEntry{
				ID: in.ID, Group: in.Name.Group, Owner: in.Name.Owner, Key: in.Name.Key,
				CreatedAt: in.CreatedAt.UTC().Format(time.RFC3339Nano),
				UpdatedAt: in.UpdatedAt.UTC().Format(time.RFC3339Nano),
			}
		}
		return writeJSON(c.stdout, out)
	}
	if len(infos) == 0 {
		if *all {
			c.note("no secrets")
		} else {
			c.note("no secrets in %s", sf.store(nil))
		}
		return nil
	}
	tw := tabwriter.NewWriter(c.stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "GROUP\tOWNER\tKEY\tCREATED\tUPDATED")
	for _, in := range infos {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", display(in.Name.Group), ownerText(in.Name.Owner),
			display(in.Name.Key), in.CreatedAt.UTC().Format(time.RFC3339),
			in.UpdatedAt.UTC().Format(time.RFC3339))
	}
	return tw.Flush()
}

// list lists the scope of the flags. It needs no keyring.
func (sf *scopeFlags) list(ctx context.Context, db secrets.DBTX) ([]secrets.Info, error) {
	return sf.store(nil).List(ctx, db)
}
