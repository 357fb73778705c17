// Package reliability holds no code of its own: its tests attack
// sqlsecrets the way a hostile database user, a careless caller, a
// crashing server and a busy application would, and count what they did.
//
// Run the suite and print its figures with
//
//	./scripts/figures          # the normal run, a minute or two
//	./scripts/figures -soak    # many more cases, operations and faults
//
// Every kind of attack records, in the table it prints, the cases and
// mutations it tried, the operations it ran, the faults it injected, and
// the rows lost, rows unreadable and leaks found; the last three must be
// zero, and a test fails when one is not.
package reliability
