-- Edges report themselves (through the primary, also when they read a standby): which
-- change they applied last and how fresh their data source is, so the worker can wait for
-- every live edge before telling the CA to fetch an HTTP-01 challenge, and operators can
-- see which edges and regions lag.
CREATE TABLE edges (
    id                 uuid PRIMARY KEY,
    name               text NOT NULL,
    region             text NOT NULL DEFAULT '',
    read_only          boolean NOT NULL,
    started_at         timestamptz NOT NULL DEFAULT now(),
    seen_at            timestamptz NOT NULL DEFAULT now(),
    -- The highest change-log sequence number applied to its memory.
    position           bigint NOT NULL,
    -- Its data source's clock at the start of its last complete catch-up: on a standby the
    -- commit time of the last transaction replayed, on the primary now(). Everything
    -- committed before it is in the edge's memory.
    synced_at          timestamptz,
    replay_lag_seconds double precision
);
CREATE INDEX edges_seen ON edges (seen_at);

-- Rolling upgrades: the oldest migration an edge binary must know to read this schema.
-- A migration that changes what edges read incompatibly raises it; the others leave it, so
-- an edge one or more migrations behind keeps serving.
CREATE TABLE schema_compat (
    id                   int PRIMARY KEY CHECK (id = 1),
    edge_compatible_from bigint NOT NULL
);
INSERT INTO schema_compat VALUES (1, 13);

-- When the current round claimed the domain: a "check now" that arrives during the round
-- (after its DNS lookups may have run) makes the next round due at once instead of being
-- overwritten by the round's own schedule.
ALTER TABLE domains ADD COLUMN claimed_at timestamptz;
