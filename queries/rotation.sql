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
-- cannot deadlock with an application's writes. The rows are matched and
-- locked first, by index within the batch's id range, so that even a
-- cached generic plan reads only the batch.
-- name: SwapValues :many
WITH u AS (
    SELECT
        unnest(sqlc.arg(ids)::bigint[]) AS id,
        unnest(sqlc.arg(old_values)::text[]) AS old_value,
        unnest(sqlc.arg(new_values)::text[]) AS new_value
), locked AS (
    SELECT s.id, u.new_value
    FROM secrets AS s
    JOIN u ON u.id = s.id AND u.old_value = s.value
    WHERE s.id BETWEEN sqlc.arg(first_id) AND sqlc.arg(last_id)
    ORDER BY s.id
    FOR UPDATE OF s SKIP LOCKED
)
UPDATE secrets AS s SET value = locked.new_value
FROM locked
WHERE s.id = locked.id
RETURNING s.id;
