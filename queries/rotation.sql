-- What rotation and verification need: keyset-paginated reads over the
-- whole table and a compare-and-swap write of a whole batch.

-- ReadBatch reads the rows from from_id up to and including last_id, in
-- id order.
-- name: ReadBatch :many
SELECT id, key, "group", owner_id, value FROM secrets
WHERE id >= sqlc.arg(from_id) AND id <= sqlc.arg(last_id)
ORDER BY id
LIMIT sqlc.arg(batch_size);

-- NextID returns the smallest id from from_id on, so that workers skip the
-- empty stretches of a table with sparse ids.
-- name: NextID :one
SELECT id FROM secrets WHERE id >= sqlc.arg(from_id) ORDER BY id LIMIT 1;

-- ClaimChunk takes a session advisory lock on one chunk of ids for this
-- rotation run's workers, or reports that another worker holds it.
-- name: ClaimChunk :one
SELECT pg_try_advisory_lock(sqlc.arg(class)::int, sqlc.arg(chunk)::int);

-- WaitChunk takes the same lock as ClaimChunk, waiting for it.
-- name: WaitChunk :exec
SELECT pg_advisory_lock(sqlc.arg(class)::int, sqlc.arg(chunk)::int);

-- name: ReleaseChunk :exec
SELECT pg_advisory_unlock(sqlc.arg(class)::int, sqlc.arg(chunk)::int);

-- name: ReadByIDs :many
SELECT id, key, "group", owner_id, value FROM secrets
WHERE id = ANY(sqlc.arg(ids)::bigint[])
ORDER BY id;

-- SwapValues replaces each row's value only where it still holds the old
-- value, and returns the ids it replaced. A row written in between keeps
-- the newer value and is missing from the result. So is a row that another
-- transaction holds locked: the statement never waits for a lock, so it
-- cannot deadlock with an application's writes.
-- name: SwapValues :many
WITH locked AS (
    SELECT id FROM secrets
    WHERE id BETWEEN sqlc.arg(first_id) AND sqlc.arg(last_id)
      AND id = ANY(sqlc.arg(ids)::bigint[])
    ORDER BY id
    FOR UPDATE SKIP LOCKED
)
UPDATE secrets AS s SET value = u.new_value
FROM (
    SELECT
        unnest(sqlc.arg(ids)::bigint[]) AS id,
        unnest(sqlc.arg(old_values)::text[]) AS old_value,
        unnest(sqlc.arg(new_values)::text[]) AS new_value
) AS u
JOIN locked ON locked.id = u.id
-- The ANY condition lets the planner read the batch's rows by index
-- rather than scan the table to join them.
WHERE s.id BETWEEN sqlc.arg(first_id) AND sqlc.arg(last_id)
  AND s.id = u.id AND s.value = u.old_value
RETURNING s.id;
