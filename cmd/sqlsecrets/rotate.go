package main

import (
	"context"
	"fmt"
	"io"

	"github.com/sqlsecrets/sqlsecrets/rotation"
)

var rotateCommand = &command{
	name:     "rotate",
	synopsis: "[--batch N] [--workers N] [--dry-run] [--json]",
	summary:  "re-encrypt every secret with the current key",
	help: `Rotate re-encrypts every secret that the keyring can open with the current
key, SECRETS_KEY. Put the old key, or keys, in SECRETS_PREVIOUS_KEYS. Rows
already under SECRETS_KEY are skipped, so a rotation that was stopped
finishes when run again. Rows written by the application during the run are
never overwritten. Rows that no key of the ring opens are left as they are
and reported as failed, by id, scope and key.

To change keys: set SECRETS_KEY to a new key from 'sqlsecrets keygen' and
SECRETS_PREVIOUS_KEYS to the old one, run rotate, then 'sqlsecrets verify'
with the old key left out; drop it only once verify finds no unreadable row.

Rotate prints how many rows it rotated, skipped and could not open, and the
failed rows; --json prints instead
  {"rotated":N,"skipped":N,"failed":N,"failures":[{"id":N,"group":"...",
   "owner":N|null,"key":"...","error":"..."}]}
It exits with status 1 when a row failed. On SIGINT or SIGTERM it stops
after the batches in progress and says how far it got; run it again to
finish. Progress goes to standard error.

Without --workers, it reads and seals ahead on one connection while two
batches at a time are written on two more. With --workers N, N connections
share the work, each claiming chunks of 10,000 ids with an advisory lock.
Rotations started with --workers in several processes, on several
machines, share the table the same way; each prints the rows it rotated,
and their sum is the rows that needed it. Run verify once they have all
finished.
`,
	run: runRotate,
}

// failureJSON is one failed row in --json output.
type failureJSON struct {
	ID    int64  `json:"id"`
	Group string `json:"group"`
	Owner *int64 `json:"owner"`
	Key   string `json:"key"`
	Error string `json:"error"`
}

func failuresJSON(fs []rotation.Failure) []failureJSON {
	out := make([]failureJSON, len(fs))
	for i, f := range fs {
		out[i] = failureJSON{ID: f.ID, Group: f.Name.Group, Owner: f.Name.Owner, Key: f.Name.Key,
			Error: f.Err.Error()}
	}
	return out
}

func runRotate(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet()
	workers := registerWorkers(fs)
	batch := registerBatch(fs, rotation.DefaultBatchSize, rotation.MaxBatchSize,
		"read and write `N` rows at a time")
	dryRun := fs.Bool("dry-run", false, "open every row and count, but write nothing")
	asJSON := fs.Bool("json", false, "print the result as one JSON object")
	rest, err := c.parse(fs, args, "", 1)
	if err != nil {
		return err
	}
	if err := c.noArgs(rest); err != nil {
		return err
	}

	ring, pool, err := openConns(ctx, runConns(*workers))
	if err != nil {
		return err
	}
	defer pool.Close()

	prog := c.newProgress("rotate")
	res, runErr := rotation.Rotate(ctx, pool, ring, rotation.Options{
		BatchSize: *batch,
		Workers:   *workers,
		DryRun:    *dryRun,
		Progress: func(p rotation.Progress) {
			prog.update(fraction(p.Done, p.Total), fmt.Sprintf("%d/%d rows", p.Done, p.Total),
				fmt.Sprintf(", rotated %d, skipped %d, failed %d", p.Rotated, p.Skipped, p.Failed))
		},
	})
	prog.done()

	if *asJSON {
		err = writeJSON(c.stdout, struct {
			Rotated  int64         `json:"rotated"`
			Skipped  int64         `json:"skipped"`
			Failed   int64         `json:"failed"`
			Failures []failureJSON `json:"failures"`
		}{res.Rotated, res.Skipped, res.Failed, failuresJSON(res.Failures)})
	} else {
		err = printRotation(c.stdout, res, *dryRun)
	}
	switch {
	case runErr != nil && ctx.Err() != nil:
		return fmt.Errorf("rotation interrupted: %w", runErr)
	case runErr != nil:
		return fmt.Errorf("rotation: %w", runErr)
	case err != nil:
		return err
	case res.Failed > 0:
		return withHint(fmt.Errorf("%s could not be rotated", plural(res.Failed, "row")),
			"rows that no key of the ring opens stay as they are: add the key that sealed them "+
				"to SECRETS_PREVIOUS_KEYS and run rotate again, or set or delete them")
	}
	return nil
}

// printRotation prints the counts of a rotation and the failed rows.
func printRotation(w io.Writer, res rotation.Result, dryRun bool) error {
	verb := "rotated:"
	if dryRun {
		verb = "would rotate:"
	}
	_, err := fmt.Fprintf(w, "%-13s %d\n%-13s %d (already under SECRETS_KEY)\n%-13s %d\n",
		verb, res.Rotated, "skipped:", res.Skipped, "failed:", res.Failed)
	if err != nil {
		return err
	}
	return printFailures(w, res.Failures, res.Failed)
}

// printFailures lists failed rows by id, scope and key, and says when the
// list stops short of the count.
func printFailures(w io.Writer, fs []rotation.Failure, count int64) error {
	for _, f := range fs {
		if _, err := fmt.Fprintf(w, "  id %d: %s: %s\n", f.ID, f.Name,
			terminalSafe(f.Err.Error())); err != nil {
			return err
		}
	}
	if n := int64(len(fs)); n < count {
		_, err := fmt.Fprintf(w, "  ... and %d more\n", count-n)
		return err
	}
	return nil
}
