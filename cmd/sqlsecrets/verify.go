package main

import (
	"context"
	"fmt"

	"github.com/sqlsecrets/sqlsecrets/rotation"
)

var verifyCommand = &command{
	name:     "verify",
	synopsis: "[--batch N] [--workers N] [--json]",
	summary:  "check that every secret opens with the keyring",
	help: `Verify opens every secret with the keyring of SECRETS_KEY and
SECRETS_PREVIOUS_KEYS, checking each one's integrity, and counts them:
  current     under SECRETS_KEY
  previous    under a key of SECRETS_PREVIOUS_KEYS, or in the legacy format:
              readable, and rotate would move them
  unreadable  sealed with a key the ring lacks, or altered
and, among the previous ones, the legacy rows (in the PHP original's format,
read with SECRETS_READ_LEGACY=true). Unreadable rows are listed by id, scope
and key, never by value, and make verify exit with status 1. Run it without
an old key in the ring before dropping that key for good. Nothing is
written.

--json prints {"total":N,"current":N,"previous":N,"unreadable":N,
"legacy":N,"failures":[...]}, the failures as rotate --json lists them (at
most 1,000; the counts are always exact). Progress goes to standard error.
`,
	run: runVerify,
}

func runVerify(ctx context.Context, c *cli, args []string) error {
	fs := c.flagSet()
	workers := registerWorkers(fs)
	batch := registerBatch(fs, rotation.DefaultBatchSize, rotation.MaxBatchSize,
		"read `N` rows at a time")
	asJSON := fs.Bool("json", false, "print the counts as one JSON object")
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

	prog := c.newProgress("verify")
	rep, err := rotation.Verify(ctx, pool, ring, rotation.Options{
		BatchSize: *batch,
		Workers:   *workers,
		Progress: func(p rotation.Progress) {
			prog.update(fraction(p.Done, p.Total), fmt.Sprintf("%d/%d rows", p.Done, p.Total),
				fmt.Sprintf(", current %d, previous %d, unreadable %d",
					p.Rotated, p.Skipped, p.Failed))
		},
	})
	prog.done()
	if err != nil {
		// A partial count would read as a verdict: print none.
		return fmt.Errorf("verify: %w", err)
	}

	if *asJSON {
		err = writeJSON(c.stdout, struct {
			Total      int64         `json:"total"`
			Current    int64         `json:"current"`
			Previous   int64         `json:"previous"`
			Unreadable int64         `json:"unreadable"`
			Legacy     int64         `json:"legacy"`
			Failures   []failureJSON `json:"failures"`
		}{rep.Total, rep.Current, rep.Previous, rep.Unreadable, rep.Legacy,
			failuresJSON(rep.Failures)})
	} else {
		_, err = fmt.Fprintf(c.stdout, "%-11s %d\n%-11s %d (under SECRETS_KEY)\n"+
			"%-11s %d (under SECRETS_PREVIOUS_KEYS, or legacy)\n%-11s %d\n"+
			"%-11s %d (of the previous, in the PHP original's format)\n",
			"total:", rep.Total, "current:", rep.Current, "previous:", rep.Previous,
			"unreadable:", rep.Unreadable, "legacy:", rep.Legacy)
		if err == nil {
			err = printFailures(c.stdout, rep.Failures, rep.Unreadable)
		}
	}
	if err != nil {
		return err
	}
	if rep.Unreadable > 0 {
		return withHint(fmt.Errorf("%s cannot be read with this keyring",
			plural(rep.Unreadable, "row")),
			"keep every key that sealed them in SECRETS_PREVIOUS_KEYS; a row that no key "+
				"opens was altered or sealed with a lost key")
	}
	return nil
}
