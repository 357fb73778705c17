//go:build tools

// This file pins the code generator so that go generate ./... runs the
// sqlc version recorded in go.mod, not whatever is on the PATH.
package sqlsecrets

import _ "github.com/sqlc-dev/sqlc/cmd/sqlc"
