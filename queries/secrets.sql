-- Reads and writes of one scope. A scope without an owner matches only rows
-- whose owner_id IS NULL; such reads have queries of their own so that every
-- statement can use the unique index (IS NOT DISTINCT FROM cannot).

-- name: GetSecret :one
SELECT value FROM secrets
WHERE key = sqlc.arg(key) AND "group" = sqlc.arg(group_name)
  AND owner_id = sqlc.arg(owner_id)::bigint;

-- name: GetGlobalSecret :one
SELECT value FROM secrets
WHERE key = sqlc.arg(key) AND "group" = sqlc.arg(group_name)
  AND owner_id IS NULL;

-- name: UpsertSecret :exec
INSERT INTO secrets (key, "group", owner_id, value)
VALUES (sqlc.arg(key), sqlc.arg(group_name), sqlc.narg(owner_id), sqlc.arg(value))
ON CONFLICT (key, "group", owner_id)
DO UPDATE SET value = EXCLUDED.value, updated_at = now();

-- UpsertSecrets writes many rows in one statement. An owner of -1 stands
-- for "no owner" (stored as NULL); real owners are never negative. The
-- caller must not send the same scope key twice in one call.
-- name: UpsertSecrets :execrows
INSERT INTO secrets (key, "group", owner_id, value)
SELECT
    unnest(sqlc.arg(keys)::text[]),
    unnest(sqlc.arg(group_names)::text[]),
    NULLIF(unnest(sqlc.arg(owner_ids)::bigint[]), -1),
    unnest(sqlc.arg(vals)::text[])
ON CONFLICT (key, "group", owner_id)
DO UPDATE SET value = EXCLUDED.value, updated_at = now();

-- InsertSecrets writes new rows with COPY. It fails, writing nothing, when
-- one of them exists already. An owner of NULL is a global secret.
-- name: InsertSecrets :copyfrom
INSERT INTO secrets (key, "group", owner_id, value)
VALUES (sqlc.arg(key), sqlc.arg(group_name), sqlc.narg(owner_id), sqlc.arg(value));

-- name: DeleteSecret :execrows
DELETE FROM secrets
WHERE key = sqlc.arg(key) AND "group" = sqlc.arg(group_name)
  AND owner_id = sqlc.arg(owner_id)::bigint;

-- name: DeleteGlobalSecret :execrows
DELETE FROM secrets
WHERE key = sqlc.arg(key) AND "group" = sqlc.arg(group_name)
  AND owner_id IS NULL;

-- name: ListSecrets :many
SELECT id, key, "group", owner_id, created_at, updated_at FROM secrets
WHERE "group" = sqlc.arg(group_name) AND owner_id = sqlc.arg(owner_id)::bigint
ORDER BY key;

-- name: ListGlobalSecrets :many
SELECT id, key, "group", owner_id, created_at, updated_at FROM secrets
WHERE "group" = sqlc.arg(group_name) AND owner_id IS NULL
ORDER BY key;

-- name: ListAllSecrets :many
SELECT id, key, "group", owner_id, created_at, updated_at FROM secrets
ORDER BY "group", owner_id NULLS FIRST, key;

-- name: CountSecrets :one
SELECT count(*) FROM secrets;
