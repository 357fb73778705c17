// Package bench measures sqlsecrets against the raw database and against
// the PHP original's rotation algorithm, side by side on one database in
// one run.
//
// An [Env] is a database schema holding the secrets table, two master keys
// (an old one, which every seeded row is sealed with, and a new one, which
// rotation moves them to) and the [Data] that the rows are made from.
// [Env.Seed] fills the table and keeps a copy of it in the table
// bench_seed; [Env.Restore] puts that copy back, so that every rotation
// scenario starts from the same rows, all under the old key. Restoring is
// timed on its own, never as part of a scenario.
//
// The scenarios return measurements, not judgements: [Pair] for the
// per-operation latencies of Get and Set beside a raw pgx statement,
// [Throughput] for rotation and import. Only ratios taken in one run mean
// anything: the numbers move with whatever else the machine is doing.
//
// The command cmd/sqlsecrets-bench runs every scenario and prints a table;
// the testing.B benchmarks of this package run the same code on small
// tables for benchstat.
package bench
